#!/usr/bin/env python3
"""Run an unchanged Python AWS Lambda handler as a sluice exec handler.

    sluice consumer create NAME --stream S --handler 'exec:python3 tools/lambda-shim.py app.py'
    tools/lambda-shim.py MODULE_PATH_OR_NAME[:FUNCTION]     (FUNCTION defaults to "handler")

MODULE_PATH_OR_NAME is a file (path/to/app.py; its folder is put first on sys.path, as Lambda's
task root) or an importable module name (pkg.app). The function is called as Lambda calls it,
handler(event, context), once per event line read on stdin (docs/handlers.md has the format),
and its return value becomes the response line on stdout:
    None, or anything without "batchItemFailures"   {}                         (success)
    {"batchItemFailures": [...], ...}               {"batchItemFailures": [...]}
    an exception                                    {"error": "Type: message"}, traceback on stderr
Anything the handler prints goes to stderr (sluiced's log): stdout carries only responses.

The context has the Lambda attributes: function_name (from $SLUICE_CONSUMER), function_version,
invoked_function_arn, memory_limit_in_mb, aws_request_id (a fresh uuid4 per batch),
log_group_name, log_stream_name, identity, client_context, and get_remaining_time_in_millis()
counting down from $SLUICE_TIMEOUT_MS (sluiced sets it to the consumer's --timeout).

Python 3 standard library only.
"""
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
import uuid

DEFAULT_FUNCTION = "handler"
# Lambda's own maximum, for get_remaining_time_in_millis() when no timeout is known.
MAX_TIMEOUT_MS = 900000


class LambdaContext:
    """The subset of the Lambda Python context object that handlers use."""

    def __init__(self, deadline_ms):
        consumer = os.environ.get("SLUICE_CONSUMER", "sluice-consumer")
        stream = os.environ.get("SLUICE_STREAM", "")
        shard = os.environ.get("SLUICE_SHARD", "0")
        self.function_name = consumer
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:sluice:lambda:local:000000000000:function:" + consumer
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = "/aws/lambda/" + consumer
        self.log_stream_name = "%s/shardId-%012d/%d" % (stream, int(shard or 0), os.getpid())
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.monotonic() * 1000))


def load_handler(spec):
    target, func_name = spec, DEFAULT_FUNCTION
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isidentifier():
        target, func_name = head, tail
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        sys.path.insert(0, os.path.dirname(path))
        name = os.path.splitext(os.path.basename(path))[0]
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ImportError("cannot load %s" % target)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(target)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise AttributeError("%s has no function %s" % (target, func_name))
    return func


def to_response(value):
    if isinstance(value, dict) and value.get("batchItemFailures") is not None:
        return {"batchItemFailures": value["batchItemFailures"]}
    return {}


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: lambda-shim.py MODULE_PATH_OR_NAME[:FUNCTION]\n")
        return 2
    # Responses go to the real stdout; everything else that writes to fd 1 or sys.stdout
    # (print() in the handler, a C extension) lands on stderr instead of corrupting the stream.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    try:
        handler = load_handler(argv[1])
    except Exception:
        sys.stderr.write("lambda-shim: cannot load %s:\n" % argv[1])
        traceback.print_exc()
        return 1

    timeout_ms = int(os.environ.get("SLUICE_TIMEOUT_MS", "0") or 0)
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0
        start_ms = time.monotonic() * 1000
        deadline_ms = start_ms + (timeout_ms if timeout_ms > 0 else MAX_TIMEOUT_MS)
        try:
            event = json.loads(line)
            result = handler(event, LambdaContext(deadline_ms))
            response = json.dumps(to_response(result), separators=(",", ":"))
        except Exception as e:
            traceback.print_exc()
            sys.stderr.flush()
            response = json.dumps({"error": "%s: %s" % (type(e).__name__, e)})
        out.write(response + "\n")
        out.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
