# Extracts the case table the native engine needs from the pinned
# autobahntestsuite package: every case's id, description and expectation
# (the report text), and the payloads of the data-driven UTF-8 cases 6.5.*
# and later. Run with the testsuite's Python 2.7 virtualenv:
#
#   ~/.cache/wstoolkit/autobahn-py27-*/bin/python autobahn/spec/extract.py > autobahn/spec/cases.json
import binascii, json, sys
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
    out.append(row)
json.dump({"testsuite": autobahntestsuite.version, "cases": out}, sys.stdout, indent=1, sort_keys=True, separators=(",", ": "))
sys.stdout.write("\n")
