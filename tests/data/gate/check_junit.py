"""Reads a JUnit XML report written by assay with python's own XML parser
(so a report that is not well-formed fails here, not in the C test) and
prints what it holds as one JSON object for tests/test_gate.c:
{"tests", "failures", "errors", "suite": {...attributes}, "cases": [{
"classname", "name", "time", "failure": {"type", "message", "text"} or null,
"error": ... or null, "out": text or null}]}.
It also checks what every JUnit consumer relies on: the header's counts are
those of the test cases. Usage: python3 check_junit.py REPORT.xml"""
import json
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except ET.ParseError as e:
    print("not well-formed XML:", e, file=sys.stderr)
    sys.exit(1)


def problem(case, tag):
    found = case.findall(tag)
    if not found:
        return None
    if len(found) > 1:
        print("more than one <%s> in a test case" % tag, file=sys.stderr)
        sys.exit(1)
    e = found[0]
    return {"type": e.get("type"), "message": e.get("message"), "text": e.text}


if root.tag != "testsuites":
    print("root element is <%s>, not <testsuites>" % root.tag, file=sys.stderr)
    sys.exit(1)
suites = root.findall("testsuite")
if len(suites) != 1:
    print("%d <testsuite> elements, want 1" % len(suites), file=sys.stderr)
    sys.exit(1)
suite = suites[0]
cases = []
for c in suite.findall("testcase"):
    out = c.find("system-out")
    cases.append({
        "classname": c.get("classname"),
        "name": c.get("name"),
        "time": float(c.get("time")),
        "failure": problem(c, "failure"),
        "error": problem(c, "error"),
        "out": out.text if out is not None else None,
    })
counted = {
    "tests": len(cases),
    "failures": sum(1 for c in cases if c["failure"]),
    "errors": sum(1 for c in cases if c["error"]),
}
for elem in (root, suite):
    for key, want in counted.items():
        if int(elem.get(key)) != want:
            print("<%s %s=%s> but %d such test cases"
                  % (elem.tag, key, elem.get(key), want), file=sys.stderr)
            sys.exit(1)
print(json.dumps({
    "tests": counted["tests"],
    "failures": counted["failures"],
    "errors": counted["errors"],
    "suite": dict(suite.attrib),
    "cases": cases,
}))
