"""openapi.py -- check an answer of corod against doc/openapi.yaml.

    import openapi
    problems = openapi.check("GET", "/v1/tasks/7?wait=1", 200,
                             {"content-type": "application/json"}, raw)

tests/lib/corod.py calls check() for every answer its request() reads,
so every end-to-end test also proves the description: the answer must
belong to an operation (method and path template; HEAD is GET without a
body), its status must be one the operation lists (or one of
x-corod-any-operation's, answered before any endpoint runs), its content
type one the status lists, and a JSON body must match the schema (a list
of more than 40 elements, such as a batch of a thousand tasks, on its
first and last 20).  An unknown path may only be answered with those
any-operation statuses and a problem document.

Needs PyYAML and jsonschema (Debian: python3-yaml, python3-jsonschema).
A missing module fails loudly (ImportError with what to install) unless
COROD_NO_OPENAPI_CHECK=1 turns the check off.  The description is read
and each schema compiled once per process.
"""

import json
import os
import re
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

ENABLED = os.environ.get("COROD_NO_OPENAPI_CHECK", "") in ("", "0")

if ENABLED:
    try:
        import jsonschema
        import yaml
    except ImportError as e:
        raise ImportError(
            "tests/lib/openapi.py: %s; every answer of the end-to-end tests "
            "is validated against doc/openapi.yaml with PyYAML and "
            "jsonschema (apt-get install python3-yaml python3-jsonschema, "
            "and ./configure again so that PYTHON3 is a python3 that has "
            "them), or set COROD_NO_OPENAPI_CHECK=1 to test without" % e) \
            from e

METHODS = ("get", "put", "post", "delete", "options", "head", "patch",
           "trace")


class Description:
    """doc/openapi.yaml, its path templates, and compiled validators."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            # safe_load, but dates stay strings (as openapi-json.py does)
            loader = type("L", (yaml.SafeLoader,), {})
            loader.yaml_implicit_resolvers = {
                k: [(t, r) for t, r in v
                    if t != "tag:yaml.org,2002:timestamp"]
                for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
            self.doc = yaml.load(f, Loader=loader)
        self.path = path
        anyop = self.doc.get("x-corod-any-operation", {})
        self.any_statuses = set(str(s) for s in anyop.get("statuses", ()))
        self.unparsed = set(str(s) for s in anyop.get("unparsed", ()))
        self.templates = []
        for tmpl, item in self.doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+",
                              re.escape(tmpl)) + "$"
            # literal paths before templated ones (OpenAPI's rule)
            self.templates.append((tmpl.count("{"), tmpl, re.compile(rx),
                                   item))
        self.templates.sort(key=lambda t: (t[0], t[1]))
        self.validators = {}
        self.passed = set()         # (pointer, body) found valid
        self.lock = threading.Lock()
        cls = jsonschema.validators.validator_for(
            {"$schema": "https://json-schema.org/draft/2020-12/schema"})
        self.validator_class = cls

    def resolve(self, obj, pointer):
        """Follow a $ref (within the document); (object, its pointer)."""
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj and seen < 10:
            ref = obj["$ref"]
            if not ref.startswith("#/"):
                raise ValueError("external $ref %r" % ref)
            pointer = ref[1:]
            obj = self.doc
            for part in ref[2:].split("/"):
                obj = obj[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
        return obj, pointer

    def validator(self, pointer):
        """The compiled validator of the schema at pointer (cached)."""
        with self.lock:
            v = self.validators.get(pointer)
            if v is None:
                # the whole document with a $ref to the schema: its own
                # "#/components/..." references resolve within it
                root = dict(self.doc)
                root["$ref"] = "#" + pointer
                root.pop("$schema", None)
                v = self.validator_class(root)
                self.validators[pointer] = v
            return v

    def operation(self, method, path):
        """(template, operation or None, item or None) for a request."""
        path = path.split("?", 1)[0].split("#", 1)[0]
        for _, tmpl, rx, item in self.templates:
            if rx.match(path):
                m = method.lower()
                if m == "head":
                    m = "get"
                op = item.get(m) if m in METHODS else None
                return tmpl, op, item
        return None, None, None


_desc = None
_desc_lock = threading.Lock()


def description():
    """The description of the tree under test (read once)."""
    global _desc
    with _desc_lock:
        if _desc is None:
            top = os.environ.get("COROD_SRCDIR") or \
                os.path.dirname(os.path.dirname(HERE))
            _desc = Description(os.path.join(top, "doc", "openapi.yaml"))
        return _desc


def esc(s):
    return s.replace("~", "~0").replace("/", "~1")


def _media(ctype):
    return ctype.split(";", 1)[0].strip().lower()


def check(method, path, status, headers, raw):
    """What is wrong with this answer by the description: a list of
    strings, empty when it matches (or when the check is off).  method
    None: the request is not known (a raw exchange); then only a problem
    document is checked."""
    if not ENABLED:
        return []
    d = description()
    if str(status) in d.unparsed and \
            headers.get("content-type") is None and \
            (raw.lstrip().startswith(b"<html>") or
             raw.startswith(b"HTTP/1.1 %d " % status)):
        # libmicrohttpd's own answer to what it cannot parse; 0.9.75
        # sends its head twice for a Content-Length it cannot read (the
        # second head is then the start of the "body"): a known defect,
        # in the description's x-corod-any-operation
        return []
    if method is None:
        if _media(headers.get("content-type", "")) != \
                "application/problem+json":
            return []
        return _check_body(d, "(a raw request) -> %s" % status, "GET",
                           headers.get("content-type", ""), raw,
                           "/components/schemas/Problem",
                           {"application/problem+json"})
    tmpl, op, item = d.operation(method, path)
    code = str(status)
    ctype = headers.get("content-type", "")
    where = "%s %s -> %s" % (method, path[:200], status)
    if op is None:
        # no endpoint: only answers given before one is chosen
        what = "no path of the description" if tmpl is None else \
            "%s has no %s operation" % (tmpl, method)
        if code not in d.any_statuses:
            return ["%s: status %s, undocumented (%s)" % (where, code, what)]
        return _check_body(d, where, method, ctype, raw,
                           "/components/schemas/Problem",
                           {"application/problem+json"})
    opname = op.get("operationId", tmpl)
    responses = op.get("responses", {})
    if code in responses:
        resp, rptr = d.resolve(responses[code],
                               "/paths/%s/%s/responses/%s" % (
                                   esc(tmpl), "get" if method.upper() ==
                                   "HEAD" else method.lower(), code))
    elif code in d.any_statuses:
        return _check_body(d, where, method, ctype, raw,
                           "/components/schemas/Problem",
                           {"application/problem+json"})
    else:
        return ["%s: status %s is not documented for %s (%s)" % (
            where, code, opname, ", ".join(sorted(responses)))]
    content = resp.get("content")
    if not content:
        if raw and method.upper() != "HEAD":
            return ["%s: %s answers %s without a body, got %r" % (
                where, opname, code, raw[:100])]
        return []
    if not raw or method.upper() == "HEAD":
        return []
    # the media type as documented (with its parameters), else by its
    # type alone
    key = None
    for k in content:
        if k.replace(" ", "").lower() == ctype.replace(" ", "").lower():
            key = k
    if key is None:
        for k in content:
            if _media(k) == _media(ctype):
                key = k
    if key is None:
        return ["%s: content type %r is not documented for %s %s (%s)" % (
            where, ctype, opname, code, ", ".join(content))]
    if _media(key) == "text/event-stream":
        return _check_stream(d, where, raw)
    schema = content[key].get("schema")
    if schema is None:
        return []
    sptr = "%s/content/%s/schema" % (rptr, esc(key))
    schema, sptr = d.resolve(schema, sptr)
    return _check_body(d, where, method, ctype, raw, sptr, {_media(key)},
                       schema)


def _check_body(d, where, method, ctype, raw, pointer, types, schema=None):
    if not raw or method.upper() == "HEAD":
        return []
    if _media(ctype) not in types:
        return ["%s: content type %r, want %s" % (where, ctype,
                                                  " or ".join(types))]
    if "json" not in _media(ctype):
        if schema is not None and schema.get("type") == "string":
            return []
        return []
    # polling tests get the same answer many times: checked once
    key = (pointer, bytes(raw))
    if key in d.passed:
        return []
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return ["%s: the body is not JSON (%s): %r" % (where, e, raw[:200])]
    v = d.validator(pointer)
    errs = sorted(v.iter_errors(_sample(body)),
                  key=lambda e: list(e.absolute_path))
    if not errs and len(raw) <= 16384:      # at most 64 MiB kept
        with d.lock:
            if len(d.passed) > 4096:
                d.passed.clear()
            d.passed.add(key)
    out = []
    for e in errs[:3]:
        at = "/" + "/".join(str(p) for p in e.absolute_path)
        out.append("%s: body%s does not match %s: %s" % (
            where, at if at != "/" else "", pointer,
            _short(e)))
    return out


SAMPLE = 20


def _sample(body):
    """The body with each long list of a top-level member (a batch of a
    thousand tasks, a page of events) cut to its first and last SAMPLE
    elements: every shape is still checked, and an answer costs at most
    a few hundred elements' worth (0.5 ms a task)."""
    if not isinstance(body, dict):
        return body
    out = None
    for k, v in body.items():
        if isinstance(v, list) and len(v) > 2 * SAMPLE:
            if out is None:
                out = dict(body)
            out[k] = v[:SAMPLE] + v[-SAMPLE:]
    return body if out is None else out


def _check_stream(d, where, raw):
    """Server-Sent Events: each record's data is an Event, or StreamGone
    for the record named "gone"."""
    out = []
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    records = text.split("\n\n")
    if not text.endswith("\n\n"):
        records.pop()           # cut short when the client left
    for rec in records:
        name, data = "message", None
        for line in rec.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:]
        if data is None:
            continue
        ptr = "/components/schemas/" + ("StreamGone" if name == "gone"
                                        else "Event")
        try:
            ev = json.loads(data)
        except ValueError as e:
            out.append("%s: an event's data is not JSON (%s): %r" % (
                where, e, data[:200]))
            continue
        for e in list(d.validator(ptr).iter_errors(ev))[:1]:
            out.append("%s: event %r does not match %s: %s" % (
                where, data[:200], ptr, _short(e)))
        if len(out) >= 3:
            break
    return out


def _short(e):
    """A schema error in one line, the best sub-error of a oneOf first."""
    best = jsonschema.exceptions.best_match([e])
    msg = best.message
    if best is not e:
        msg += " (at %s)" % "/".join(str(p) for p in best.absolute_path)
    return msg[:400]


if __name__ == "__main__":
    # python3 openapi.py: read the description and compile every schema
    d = description()
    n = 0
    for _, tmpl, _, item in d.templates:
        for m, op in item.items():
            if m not in METHODS:
                continue
            for code, r in op.get("responses", {}).items():
                r, p = d.resolve(r, "/paths/%s/%s/responses/%s" % (
                    esc(tmpl), m, code))
                for k, c in (r.get("content") or {}).items():
                    if "schema" in c:
                        s, sp = d.resolve(c["schema"], "%s/content/%s/schema"
                                          % (p, esc(k)))
                        d.validator(sp)
                        n += 1
    print("%s: %d response schemas" % (d.path, n))
