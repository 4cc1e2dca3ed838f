# Extracts the case table the native engine needs from the pinned
# autobahntestsuite package: every case's id, description and expectation
# (the report text), the payloads of the data-driven UTF-8 cases 6.5.*
# and later, and the parameters of the permessage-deflate cases 12.* and
# 13.* (message length and count, timeout, auto-fragment size, the test
# data file they slice their messages from, and the exact
# Sec-WebSocket-Extensions offer they send). The test data files themselves
# stay in the installed package: only their names, sizes and SHA-1 digests
# are written, so the native engine can find and check them. Run with the
# testsuite's Python 2.7 virtualenv:
#
#   ~/.cache/wstoolkit/autobahn-py27-*/bin/python autobahn/spec/extract.py > autobahn/spec/cases.json
import binascii, hashlib, json, os, sys
import pkg_resources
from autobahntestsuite.case import Cases
from autobahntestsuite.caseset import CaseSet
from autobahntestsuite.case import CaseCategories, CaseSubCategories, CaseSetname, CaseBasename
import autobahntestsuite

cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
out = []
for c in Cases:
    row = {"id": cs.caseClasstoId(c),
           "description": c.DESCRIPTION.decode("utf-8") if isinstance(c.DESCRIPTION, str) else c.DESCRIPTION,
           "expectation": c.EXPECTATION.decode("utf-8") if isinstance(c.EXPECTATION, str) else c.EXPECTATION}
    if hasattr(c, "PAYLOAD") and hasattr(c, "isValid"):
        row["payload"] = binascii.b2a_hex(c.PAYLOAD)
        row["valid"] = c.isValid
    if hasattr(c, "CLIENT_OFFERS") and hasattr(c, "TESTDATA"):
        # As WebSocketClientProtocol.startHandshake joins them.
        offers = ", ".join(o.getExtensionString() for o in c.CLIENT_OFFERS)
        row["deflate"] = {"len": c.LEN, "count": c.COUNT, "wait": c.WAITSECS, "fragment": c.AUTOFRAGSIZE,
                          "file": c.TESTDATA["file"], "binary": c.TESTDATA["binary"], "offers": offers}
    out.append(row)
testdata = {}
for name in sorted(set(r["deflate"]["file"] for r in out if "deflate" in r)):
    data = open(pkg_resources.resource_filename("autobahntestsuite", "testdata/%s" % name), "rb").read()
    testdata[name] = {"size": len(data), "sha1": hashlib.sha1(data).hexdigest()}
json.dump({"testsuite": autobahntestsuite.version, "cases": out, "testdata": testdata}, sys.stdout, indent=1,
          sort_keys=True, separators=(",", ": "))
sys.stdout.write("\n")
