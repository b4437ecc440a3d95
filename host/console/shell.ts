// A console session: login, then operational and configuration mode until logout, then login
// again. Failed logins slow down (1, 2, 4 ... 30 s) and are reported; the factory login works only
// on a box with no users, and only to set a real password. A bad command is answered with a caret
// under the offending word and what was expected there.
import type { Terminal } from "./terminal.js";
import { tokenize, parse, completeLine, helpLines, type Node } from "./cli.js";
import { operationalTree, configurationTree, WordError, type ConsoleHost, type ShellIO } from "./commands.js";
import { hashPassword, verifyPassword, passwordProblem, DEFAULT_USER, DEFAULT_PASSWORD } from "./passwords.js";

export interface ShellEvents {
  loginFailed?: (user: string, failures: number) => void;
  login?: (user: string) => void;
  logout?: (user: string) => void;
}

const MAX_BACKOFF_S = 30;

export class Shell {
  private user = "";
  private admin = false;
  private mode: "operational" | "configuration" = "operational";
  private loggedIn = false;
  private failures = 0;
  private readonly history: string[] = [];
  private closed = false;

  constructor(
    private readonly term: Terminal,
    private readonly host: ConsoleHost,
    private readonly events: ShellEvents = {},
    private readonly opts: { backoffMs?: (failures: number) => number; banner?: string } = {},
  ) {}

  /** Serves the console until the terminal closes. */
  async run(): Promise<void> {
    if (this.opts.banner) await this.term.print(this.opts.banner);
    while (!this.closed) {
      const ok = await this.login();
      if (ok === null) return;
      if (!ok) continue;
      await this.commands();
    }
  }

  close(): void {
    this.closed = true;
    this.term.close();
  }

  private backoff(): number {
    return this.opts.backoffMs?.(this.failures) ?? Math.min(MAX_BACKOFF_S, 2 ** (this.failures - 1)) * 1000;
  }

  /** true: logged in; false: try again; null: the line closed. */
  private async login(): Promise<boolean | null> {
    const name = await this.term.readLine(`${this.host.hostname()} login: `);
    if (name === null) return null;
    const user = name.trim();
    if (!user) return false;
    const password = await this.term.readLine("Password: ", { secret: true });
    if (password === null) return null;
    const users = this.host.session.running.system?.users ?? [];
    const account = users.find((u) => u.name === user);
    const factory = users.length === 0 && user === DEFAULT_USER && password === DEFAULT_PASSWORD;
    const ok = factory || (account !== undefined && (await verifyPassword(password, account.passwordHash)));
    if (!ok) {
      this.failures++;
      this.events.loginFailed?.(user, this.failures);
      await new Promise((r) => setTimeout(r, this.backoff()));
      await this.term.print("Login incorrect");
      return false;
    }
    this.failures = 0;
    this.user = user;
    this.admin = factory || account?.class === "admin";
    if (factory && !(await this.setFirstPassword(user))) return false;
    this.loggedIn = true;
    this.mode = "operational";
    this.events.login?.(user);
    await this.term.print(`\nWelcome to ${this.host.hostname()}. Type ? for help, Tab to complete.`);
    return true;
  }

  /** The factory login must be replaced before anything else. */
  private async setFirstPassword(user: string): Promise<boolean> {
    await this.term.print("\nThis box still has its factory login. Choose a password for admin now.");
    for (let tries = 0; tries < 3; tries++) {
      const p1 = await this.term.readLine("New password: ", { secret: true });
      if (p1 === null) return false;
      const problem = passwordProblem(p1, user);
      if (problem) {
        await this.term.print(`The password must be ${problem}.`);
        continue;
      }
      const p2 = await this.term.readLine("Retype new password: ", { secret: true });
      if (p2 === null) return false;
      if (p1 !== p2) {
        await this.term.print("The passwords differ.");
        continue;
      }
      const hash = await hashPassword(p1);
      const s = this.host.session;
      s.edit((c) => {
        c.system ??= {};
        c.system.users = [{ name: user, class: "admin", passwordHash: hash }];
      });
      const r = await s.commit({ user, comment: "first login: admin password set" });
      if (!r.ok) {
        await this.term.print("Could not save the password; the factory login stays.");
        return false;
      }
      await this.term.print("Password set and committed.");
      return true;
    }
    await this.term.print("No password set; logging out.");
    return false;
  }

  private prompt(): string {
    const base = `${this.user}@${this.host.hostname()}`;
    return this.mode === "configuration" ? `${base}# ` : `${base}> `;
  }

  private tree(): Node<void> {
    const io = this.io();
    return this.mode === "configuration" ? configurationTree(this.host, io) : operationalTree(this.host, io);
  }

  private io(): ShellIO {
    return {
      user: this.user,
      admin: this.admin,
      print: (t) => this.term.print(t),
      readBlock: (prompt) => this.readBlock(prompt),
      rawSession: (fn) => this.term.rawSession(fn),
      confirm: async (q) => ((await this.term.readLine(`${q} [yes,no] (no) `)) ?? "").trim().toLowerCase().startsWith("y"),
      enterConfig: () => {
        this.mode = "configuration";
      },
      leaveConfig: () => {
        this.mode = "operational";
      },
      logout: () => {
        this.loggedIn = false;
      },
      runOperational: (words) => this.execute(operationalTree(this.host, this.io()), words.join(" "), words.join(" "), 4),
    };
  }

  private async readBlock(prompt: string): Promise<string | null> {
    await this.term.print(prompt);
    const lines: string[] = [];
    for (;;) {
      const l = await this.term.readLine("");
      if (l === null || l === ".") return lines.join("\n");
      lines.push(l);
    }
  }

  private async commands(): Promise<void> {
    while (this.loggedIn && !this.closed) {
      if (this.mode === "configuration") await this.term.print("\n[edit]");
      const prompt = this.prompt();
      const tree = this.tree();
      const line = await this.term.readLine(prompt, {
        history: this.history,
        help: { complete: (l) => completeLine(tree, l), help: (l) => helpLines(tree, l) },
      });
      if (line === null) break;
      if (!line.trim()) continue;
      await this.execute(tree, line, line, prompt.length);
    }
    this.events.logout?.(this.user);
    this.loggedIn = false;
    this.mode = "operational";
  }

  /** Runs one command line; a bad word gets a caret under it. */
  private async execute(tree: Node<void>, line: string, shown: string, indent: number): Promise<void> {
    const { tokens, unterminated } = tokenize(line);
    const pointAt = async (word: number, message: string): Promise<void> => {
      const col = word < tokens.length ? tokens[word].start : shown.length + 1;
      await this.term.print(`${" ".repeat(indent + col)}^\n${message}`);
    };
    if (unterminated) return pointAt(tokens.length - 1, 'error: a quote is not closed: expected a closing "');
    const r = parse(tree, tokens);
    if (!r.ok) return pointAt(r.word, `error: ${r.message}`);
    try {
      await r.node.run?.(r.parsed);
    } catch (e) {
      if (e instanceof WordError) return pointAt(e.word, `error: ${e.message}`);
      await this.term.print(`error: ${(e as Error).message}`);
    }
  }
}
