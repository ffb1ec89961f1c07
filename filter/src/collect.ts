// Garbage collection. The filter is built with AssemblyScript's minimal runtime, whose collector
// runs only when asked (the incremental one keeps a shadow stack and a write barrier on every
// managed store and local, a cost paid on every request). It is asked here, at the end of an entry
// point, when no AssemblyScript frame is on the stack, once enough calls or body bytes have passed
// since the last collection: the garbage between two collections stays bounded, and a collection
// (mark the live snapshot and streams, sweep the rest) is paid once per many requests.

/** Entry-point calls between collections. */
const CALLS_PER_COLLECTION: i32 = 256;
/** Body bytes read between collections (a large body is copied into the VM once per read). */
const BYTES_PER_COLLECTION: usize = 1 << 20;

let calls: i32 = 0;
let bytes: usize = 0;

/** `size` bytes were copied into the VM for this call (a body read). */
export function noteBytes(size: usize): void { bytes += size; }

/** Called as the last step of an entry point. */
export function collectIfDue(): void {
  calls++;
  if (calls < CALLS_PER_COLLECTION && bytes < BYTES_PER_COLLECTION) return;
  calls = 0;
  bytes = 0;
  __collect();
}
