// OpenAI-shaped error bodies: {"error":{"message","type","param","code"}}. Clients written against
// the OpenAI API parse this shape, so every error the filter answers uses it.

/** Writes `text` as a JSON string literal, escaping quotes, backslashes and control characters. */
export function jsonString(text: string): string {
  let out = "\"";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

export class ErrorReply {
  constructor(public status: u32, public message: string, public type: string, public param: string, public code: string) {}

  body(): string {
    return "{\"error\":{\"message\":" + jsonString(this.message) +
      ",\"type\":" + jsonString(this.type) +
      ",\"param\":" + (this.param.length > 0 ? jsonString(this.param) : "null") +
      ",\"code\":" + jsonString(this.code) + "}}";
  }
}

export function badRequest(message: string, param: string): ErrorReply {
  return new ErrorReply(400, message, "invalid_request_error", param, "invalid_request");
}

export function modelNotFound(model: string): ErrorReply {
  return new ErrorReply(404, "The model `" + model + "` does not exist.", "invalid_request_error", "model", "model_not_found");
}

export function tooLarge(limit: i64): ErrorReply {
  return new ErrorReply(413, "Request body exceeds " + limit.toString() + " bytes.", "invalid_request_error", "", "request_too_large");
}

export function unsupportedEncoding(encoding: string): ErrorReply {
  return new ErrorReply(415, "Compressed request bodies (content-encoding: " + encoding + ") are not supported.", "invalid_request_error", "", "unsupported_encoding");
}

export function noEndpoint(model: string, why: string): ErrorReply {
  return new ErrorReply(503, "No endpoint can serve model `" + model + "`: " + why + ".", "service_unavailable", "", "no_endpoint");
}

export function shed(model: string, pool: string): ErrorReply {
  return new ErrorReply(429, "Pool " + pool + " is saturated; requests for model `" + model + "` at this priority are shed. Retry later.", "rate_limit_exceeded", "", "pool_saturated");
}

export function internalError(message: string): ErrorReply {
  return new ErrorReply(500, message, "internal_error", "", "internal_error");
}
