// Prompt texts for measuring what the filter's body scan costs, as they appear inside a JSON string
// (already escaped). The scanner's speed depends on the text: long runs of plain ASCII are its
// fastest case; escapes and non-ASCII characters each need a closer look.
export const PROMPT_TEXTS = {
  /** One letter repeated: the fastest case (bench/overhead.ts's body). */
  ascii: "x",
  /** English with an escaped quote or a \u escape every ~18 bytes. */
  english: "the quick brown fox jumps over the lazy dog, said \\\"Ada\\\" \\u00e9t\\u00e9 ",
  /** Chinese as UTF-8: what a JavaScript or Go client sends. */
  chinese: "请根据以下文档回答问题，并给出处。",
  /** The same Chinese as \uXXXX escapes: what Python's json.dumps sends by default. */
  "chinese-escaped": [..."请根据以下文档回答问题，并给出处。"].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join(""),
} as const;

export type PromptText = keyof typeof PROMPT_TEXTS;

export function isPromptText(name: string): name is PromptText {
  return Object.hasOwn(PROMPT_TEXTS, name);
}

/** `head`, then `text` repeated (padded with "x"), then `tail`: exactly `bytes` bytes of UTF-8. */
export function bodyOf(bytes: number, head: string, text: PromptText, tail: string): Buffer {
  const unit = PROMPT_TEXTS[text];
  const size = (s: string): number => Buffer.byteLength(s, "utf8");
  const room = bytes - size(head) - size(tail);
  if (room < 0) throw new Error(`a body of ${bytes} bytes cannot hold its JSON around the prompt`);
  const copies = Math.floor(room / size(unit));
  const body = Buffer.from(head + unit.repeat(copies) + "x".repeat(room - copies * size(unit)) + tail, "utf8");
  if (body.length !== bytes) throw new Error(`built a body of ${body.length} bytes, not ${bytes}`);
  return body;
}
