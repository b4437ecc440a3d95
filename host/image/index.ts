// Firmware images, slots and the boot environment: the public face for the box (host/box.ts) and
// the console. Format: format.ts (docs/image-format.md); boot rules: boot-select.ts (docs/boot.md).
import type { Board } from "../../board/types.js";
import { defaultTrustDirs, loadTrustedKeys, packageRoot } from "./keys.js";
import { bootedFromEnv, SoftwareSlots } from "./software.js";

export { parseImage, buildImage, type ParsedImage, type RefusalCode, type BoardKind } from "./format.js";
export { SoftwareSlots, bootedFromEnv, type SoftwareStatus, type SlotStatus, type SoftwareResult, type SlotName } from "./software.js";
export { loadTrustedKeys, defaultTrustDirs, type TrustedKey } from "./keys.js";

/**
 * The slots of a board with flash, trusting the board's default keys ($FLOWSWITCH_TRUST when the
 * boot step started this process). Key files that cannot be read are logged and left out.
 */
export async function openSoftwareSlots(board: Board, log?: (line: string) => void): Promise<SoftwareSlots | undefined> {
  if (!board.flash) return undefined;
  const { keys, problems } = await loadTrustedKeys(defaultTrustDirs(board.kind, packageRoot()));
  for (const p of problems) log?.(`software: trusted key skipped: ${p}`);
  const running = bootedFromEnv();
  return new SoftwareSlots(board.flash, { trusted: keys, board: board.kind, ...(running ? { running } : {}) });
}

/**
 * The boot confirmation: the box is up (engines running, console up), so an image started by the
 * boot step tells its watchdog so (docs/boot.md). Does nothing when not started from a slot.
 * Never throws: a box that cannot confirm is reverted by the watchdog, which is the right outcome.
 */
export async function confirmBoot(software: SoftwareSlots | undefined, log?: (line: string) => void): Promise<void> {
  if (!software || !bootedFromEnv()) return;
  try {
    await software.confirm();
    log?.("software: boot confirmed healthy");
  } catch (e) {
    log?.(`software: boot confirmation failed: ${(e as Error).message}`);
  }
}
