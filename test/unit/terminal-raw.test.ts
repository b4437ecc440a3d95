// Terminal.rawSession: the console's line handed over whole for a file transfer, and taken back.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";

import { Terminal } from "../../host/console/terminal.js";

function harness(): { term: Terminal; input: PassThrough; out: () => Buffer } {
  const input = new PassThrough();
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on("data", (d: Buffer) => chunks.push(d));
  return { term: new Terminal({ input, output }), input, out: () => Buffer.concat(chunks) };
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

describe("terminal: raw sessions", () => {
  it("every byte value crosses both ways untouched: no echo, no CR/LF translation, no keys", async () => {
    const h = harness();
    const got: number[] = [];
    await h.term.rawSession(async (line) => {
      line.onData((b) => got.push(...b));
      h.input.write(Buffer.from(ALL_BYTES));
      h.input.write(Buffer.from("\r\n\x03\x1b[A"));
      await settle();
      line.write(ALL_BYTES);
    });
    assert.deepEqual(got, [...ALL_BYTES, ...Buffer.from("\r\n\x03\x1b[A")]);
    assert.deepEqual([...h.out()], [...ALL_BYTES], "only what the session wrote: no echo");
  });

  it("a print started before the session is written first; one started during it waits until it ends", async () => {
    const h = harness();
    void h.term.print("before");
    let during!: Promise<void>;
    await h.term.rawSession(async (line) => {
      during = h.term.print("during");
      await settle();
      line.write(Uint8Array.of(0x43));
    });
    await during;
    assert.equal(h.out().toString("latin1"), "before\r\nCduring\r\n");
  });

  it("afterwards keys are read afresh: an escape sequence cut by the session does not swallow the next key", async () => {
    const h = harness();
    h.input.write("\x1b["); // half a sequence typed before
    await settle();
    await h.term.rawSession(async () => undefined);
    const line = h.term.readLine("> ");
    h.input.write("ok\r");
    assert.equal(await line, "ok");
  });

  it("the line closing during a session reaches it", async () => {
    const h = harness();
    const closed = await h.term.rawSession(
      (line) =>
        new Promise<boolean>((resolve) => {
          line.onClose(() => resolve(true));
          h.input.end();
        }),
    );
    assert.equal(closed, true);
  });

  it("a session is refused while a line is being read", async () => {
    const h = harness();
    const reading = h.term.readLine("> ");
    await settle();
    await assert.rejects(h.term.rawSession(async () => undefined), /the line is in use/);
    h.input.write("\r");
    await reading;
  });
});
