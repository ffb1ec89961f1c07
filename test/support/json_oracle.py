# The reference verdict for a request body, from Python's own json module: the parser vLLM and
# SGLang read request bodies with (FastAPI: json.loads(body_bytes)). Reads one body per line on
# stdin ("b" and its base64, so an empty body is not an empty line) and writes one JSON verdict
# per line on stdout; an empty line flushes the batch:
#   {"v": "found", "model": <hex of the UTF-8 model>, "rest": <digest of the other root members>}
#   {"v": "missing", "rest": ...} | {"v": "invalid", "kind": <why>} | {"v": "skip"}
# "skip": Python would decode the bytes as UTF-16 or UTF-32, which the filter never does.
import base64, hashlib, json, sys

MAX_MODEL_BYTES = 1024

def verdict(body):
    if json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
        return {"v": "skip"}
    objects = []
    def hook(pairs):
        objects.append(pairs)
        return dict(pairs)
    try:
        value = json.loads(body, object_pairs_hook=hook)
    except RecursionError:
        return {"v": "invalid", "kind": "too-deep"}
    except (ValueError, UnicodeDecodeError):
        return {"v": "invalid", "kind": "syntax"}
    if not isinstance(value, dict):
        return {"v": "invalid", "kind": "syntax"}
    root = objects[-1]  # the hook sees nested objects first, the root last
    models = [v for k, v in root if k == "model"]
    rest = hashlib.sha1(json.dumps([[k, v] for k, v in root if k != "model"], allow_nan=True).encode("utf-8", "surrogatepass")).hexdigest()
    if len(models) > 1:
        return {"v": "invalid", "kind": "duplicate-model"}
    if not models:
        return {"v": "missing", "rest": rest}
    model = models[0]
    if not isinstance(model, str):
        return {"v": "invalid", "kind": "model-not-string"}
    if len(model.encode("utf-8", "surrogatepass")) > MAX_MODEL_BYTES:
        return {"v": "invalid", "kind": "model-too-long"}
    try:
        encoded = model.encode("utf-8")
    except UnicodeEncodeError:
        return {"v": "invalid", "kind": "model-not-unicode"}
    return {"v": "found", "model": encoded.hex(), "rest": rest}

for line in sys.stdin:
    if line.strip() == "":
        sys.stdout.flush()
        continue
    sys.stdout.write(json.dumps(verdict(base64.b64decode(line.strip()[1:]))) + "\n")
