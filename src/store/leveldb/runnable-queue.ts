// The host's in-memory mirror of the runnable projection: which job a worker gets next.
// One min-heap per priority ordered by (due time, enqueue position); removals are lazy
// (an entry counts only while it is still its job's current entry).
import type { JobView } from '../../domain/types.ts';
import { runnableKeyOf } from '../../../projections/runnable.ts';

interface Entry { id: string; priority: number; dueAt: number; pos: number }

const before = (a: Entry, b: Entry): boolean => a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.pos < b.pos);

class Heap {
  private items: Entry[] = [];
  get size(): number { return this.items.length; }
  peek(): Entry | undefined { return this.items[0]; }
  push(e: Entry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }
  pop(): Entry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class RunnableQueue {
  private readonly current = new Map<string, Entry>();
  private readonly heaps = new Map<number, Heap>();
  private priorities: number[] = []; // ascending: lower runs first

  get size(): number { return this.current.size; }

  add(id: string, priority: number, dueAt: number, pos: number): void {
    const entry = { id, priority, dueAt, pos };
    this.current.set(id, entry);
    let heap = this.heaps.get(priority);
    if (!heap) {
      heap = new Heap();
      this.heaps.set(priority, heap);
      this.priorities = [...this.heaps.keys()].sort((a, b) => a - b);
    }
    heap.push(entry);
  }

  remove(id: string): void {
    this.current.delete(id);
  }

  private top(heap: Heap): Entry | undefined {
    for (;;) {
      const e = heap.peek();
      if (!e || this.current.get(e.id) === e) return e;
      heap.pop(); // stale: claimed, cancelled or re-added since
    }
  }

  /** The job a worker should run now: lowest priority number among due jobs, then due time, then enqueue order. */
  next(now: number): string | null {
    for (const p of this.priorities) {
      const e = this.top(this.heaps.get(p)!);
      if (e && e.dueAt <= now) return e.id;
    }
    return null;
  }

  /** The earliest time any job becomes due (for an idle worker's wake-up), or null. */
  nextDueAt(): number | null {
    let min: number | null = null;
    for (const p of this.priorities) {
      const e = this.top(this.heaps.get(p)!);
      if (e && (min === null || e.dueAt < min)) min = e.dueAt;
    }
    return min;
  }

  /** Follow a job's new view with the same rule as projections/runnable.ts. */
  update(id: string, job: JobView | undefined): void {
    if (job && runnableKeyOf(job) !== null) this.add(id, job.priority, job.nextRunAt!, job.enqueuedPos);
    else this.remove(id);
  }
}
