// Live step phases, kept out of the nodes' data: each node subscribes to its own step only, so a
// status change re-renders one node, not the canvas.
import { useSyncExternalStore } from "react";

export class StatusStore {
  private phases = new Map<string, string>();
  private listeners = new Map<string, Set<() => void>>();

  set(step: string, phase: string): void {
    if (this.phases.get(step) === phase) return;
    this.phases.set(step, phase);
    this.listeners.get(step)?.forEach((l) => l());
  }

  get(step: string): string | undefined {
    return this.phases.get(step);
  }

  subscribe(step: string, cb: () => void): () => void {
    let set = this.listeners.get(step);
    if (!set) this.listeners.set(step, (set = new Set()));
    set.add(cb);
    return () => set!.delete(cb);
  }
}

export const noStatus = new StatusStore();

export function useStepPhase(store: StatusStore, step: string): string | undefined {
  return useSyncExternalStore(
    (cb) => store.subscribe(step, cb),
    () => store.get(step),
  );
}
