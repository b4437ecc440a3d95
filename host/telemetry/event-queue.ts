// Events waiting for the broker. Bounded: while the broker is away the first `limit` events are
// kept and later ones are dropped and counted (metrics carry the current state anyway, and a
// bound keeps a long outage from costing the box memory). Sent in order once it is back.

export class EventQueue<T> {
  private items: T[] = [];
  private head = 0;
  dropped = 0;

  constructor(private readonly limit: number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** False (and counted) when the queue is full. */
  push(item: T): boolean {
    if (this.length >= this.limit) {
      this.dropped++;
      return false;
    }
    this.items.push(item);
    return true;
  }

  /** Puts back an event that could not be sent, ahead of the others; counted as dropped if full. */
  unshift(item: T): void {
    if (this.length >= this.limit) {
      this.dropped++;
      return;
    }
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head); // compact now and then, not on every shift
      this.head = 0;
    }
    return item;
  }
}
