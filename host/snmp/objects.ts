// Read-only scalars and tables declared as data, and a refresh that copies the view's current
// values into net-snmp's MIB tree. net-snmp answers GetNext/GetBulk walks from the rows it holds,
// so tables are rebuilt as a whole (rows come and go with the configuration); the agent calls
// refresh() when a request arrives, at most once a second, so an idle agent costs nothing and a
// walk sees one consistent snapshot.
import snmp, { type Mib } from "net-snmp";

export interface ScalarDef {
  name: string;
  oid: string;
  type: number;
  get(): unknown;
}

export interface ColumnDef<R> {
  number: number;
  name: string;
  type: number;
  get(row: R, i: number): unknown;
}

export interface TableDef<R> {
  name: string;
  /** The entry OID (xxxEntry), as net-snmp wants it. */
  oid: string;
  /** Column 1 is the index; its value is the row's integer index. */
  columns: ColumnDef<R>[];
  rows(): R[];
  /** A table indexed by another's index (ifXTable by ifIndex): that table's provider name. */
  indexOf?: string;
}

const READ_ONLY = snmp.MaxAccess["read-only"];

// Tables of any row type live in one list; each table's rows stay its own.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTable = TableDef<any>;

export class MibObjects {
  private readonly present = new Map<string, number[]>();
  private readonly failing = new Set<string>();

  constructor(
    private readonly mib: Mib,
    private readonly scalars: ScalarDef[],
    private readonly tables: AnyTable[],
    private readonly log: (line: string) => void,
  ) {
    for (const s of scalars) {
      mib.registerProvider({ name: s.name, type: snmp.MibProviderType.Scalar, oid: s.oid, scalarType: s.type, maxAccess: READ_ONLY });
    }
    for (const t of tables) {
      const columns = t.columns.map((c) => ({ number: c.number, name: c.name, type: c.type, maxAccess: READ_ONLY }));
      mib.registerProvider({
        name: t.name,
        type: snmp.MibProviderType.Table,
        oid: t.oid,
        maxAccess: snmp.MaxAccess["not-accessible"],
        tableColumns: t.indexOf ? columns.slice(1) : columns,
        tableIndex: [t.indexOf ? { columnName: t.columns[0].name, foreign: t.indexOf } : { columnName: t.columns[0].name }],
      });
      this.present.set(t.name, []);
    }
  }

  /** Copies every value from the view; a part that fails keeps its last values and is logged once. */
  refresh(): void {
    for (const s of this.scalars) this.guard(s.name, () => this.mib.setScalarValue(s.name, s.get()));
    for (const t of this.tables) this.guard(t.name, () => this.refreshTable(t));
  }

  /** One scalar only (sysUpTime is fresh on every request). */
  refreshScalar(name: string): void {
    const s = this.scalars.find((x) => x.name === name);
    if (s) this.guard(s.name, () => this.mib.setScalarValue(s.name, s.get()));
  }

  private refreshTable<R>(t: TableDef<R>): void {
    const rows = t.rows();
    const values = rows.map((r, i) => t.columns.map((c) => c.get(r, i)));
    for (const index of this.present.get(t.name) ?? []) this.mib.deleteTableRow(t.name, [index]);
    this.present.set(t.name, []);
    for (const v of values) {
      this.mib.addTableRow(t.name, v);
      this.present.get(t.name)?.push(v[0] as number);
    }
  }

  private guard(name: string, fn: () => void): void {
    try {
      fn();
      this.failing.delete(name);
    } catch (e) {
      if (!this.failing.has(name)) this.log(`snmp: cannot read ${name}: ${(e as Error).message}`);
      this.failing.add(name);
    }
  }
}
