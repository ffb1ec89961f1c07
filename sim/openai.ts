// OpenAI/vLLM wire shapes the simulator answers with.
import { randomUUID } from "node:crypto";

export type Api = "chat" | "completions";

export interface ErrorBody { error: { message: string; type: string; param: string | null; code: number } }

/** vLLM's error shape (vllm/entrypoints/openai/protocol.py ErrorResponse). */
export function errorBody(status: number, type: string, message: string, param: string | null = null): ErrorBody {
  return { error: { message, type, param, code: status } };
}

export function requestId(api: Api): string {
  return `${api === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`;
}

export interface Usage { prompt_tokens: number; completion_tokens: number; total_tokens: number }

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export function completionObject(api: Api, id: string, model: string, created: number, text: string, u: Usage): object {
  const choice = api === "chat"
    ? { index: 0, message: { role: "assistant", content: text }, finish_reason: "length", logprobs: null }
    : { index: 0, text, finish_reason: "length", logprobs: null };
  return { id, object: api === "chat" ? "chat.completion" : "text_completion", created, model, choices: [choice], usage: u };
}

export function chunkObject(api: Api, id: string, model: string, created: number, text: string, first: boolean, finish: string | null): object {
  const choice = api === "chat"
    ? { index: 0, delta: first ? { role: "assistant", content: text } : { content: text }, finish_reason: finish, logprobs: null }
    : { index: 0, text, finish_reason: finish, logprobs: null };
  return { id, object: api === "chat" ? "chat.completion.chunk" : "text_completion", created, model, choices: [choice] };
}

export function usageChunk(api: Api, id: string, model: string, created: number, u: Usage): object {
  return { id, object: api === "chat" ? "chat.completion.chunk" : "text_completion", created, model, choices: [], usage: u };
}
