/**
 * One view of this process's shared memory for large frames: whether it is on (and why not), what
 * it wrote and what it read. `myelin doctor` prints the status; tests and benchmarks read the
 * counters to see which path frames took.
 */
import { shmStatus } from "./shm-addon.js";
import { shmReaderStats, type ShmReaderStats } from "./shm-reader.js";
import { ShmWriter, SHM_THRESHOLD_BYTES, type ShmWriterStats } from "./shm-writer.js";

/** Shared-memory status and counters of this process. */
export interface ShmStats {
  /** Shared memory is usable here (addon loaded, not `MYELIN_SHM=off`). */
  available: boolean;
  /** Where the addon was loaded from, or why shared memory is off. */
  detail: string;
  /** Frames at least this large go through shared memory to same-host subscribers, in bytes. */
  thresholdBytes: number;
  /** This process as a publisher (null when shared memory is off). */
  writer: ShmWriterStats | null;
  /** This process as a subscriber. */
  reader: ShmReaderStats;
}

/** Shared-memory status and counters of this process. */
export function shmStats(): ShmStats {
  const s = shmStatus();
  return {
    available: s.available,
    detail: s.detail,
    thresholdBytes: SHM_THRESHOLD_BYTES,
    writer: s.available ? (ShmWriter.forProcess()?.stats() ?? null) : null,
    reader: shmReaderStats(),
  };
}
