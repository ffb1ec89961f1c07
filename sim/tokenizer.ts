// The simulator's tokenizer rule, shared with the benchmark client so both agree on lengths:
// one token per whitespace-separated word. Deterministic, dependency-free, and it lets the
// benchmark build prompts of an exact token length. (A real BPE tokenizer would give ~1.3 tokens
// per English word; routing only cares that equal text gives equal tokens.)

export function tokenize(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}

export function countTokens(text: string): number {
  return tokenize(text).length;
}

/** The text a chat request is counted and cached on: message contents joined by newlines. */
export function chatPromptText(messages: unknown): string {
  if (!Array.isArray(messages)) return "";
  return messages.map((m) => {
    const content = (m as { content?: unknown })?.content;
    if (typeof content === "string") return content;
    if (Array.isArray(content)) return content.map((p) => (typeof p?.text === "string" ? p.text : "")).join(" ");
    return "";
  }).join("\n");
}
