// Garbage collection. The filter is built with AssemblyScript's minimal runtime, whose collector
// runs only when asked (the incremental one keeps a shadow stack and a write barrier on every
// managed store and local, a cost paid on every request). It is asked here, at the end of an entry
// point, when no AssemblyScript frame is on the stack, once enough calls have passed since the last
// collection: the garbage between two collections stays bounded, and a collection (mark the live
// snapshot and streams, sweep the rest) is paid once per many requests. A request body, however
// large, is no garbage: it is read where the host wrote it and freed at once (stream.ts).

/** Entry-point calls between collections. */
const CALLS_PER_COLLECTION: i32 = 256;

let calls: i32 = 0;

/** Called as the last step of an entry point. */
export function collectIfDue(): void {
  calls++;
  if (calls < CALLS_PER_COLLECTION) return;
  calls = 0;
  __collect();
}
