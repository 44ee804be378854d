"""`python -m grader.nbgrader_cli ARGS`: nbgrader's own command line (`nbgrader ARGS`), started 1.5 s sooner.

Whenever nbformat loads, jsonschema imports its optional IRI format checker, `rfc3987_syntax`, which
builds a grammar at import time (1.5 s here). nbformat never validates that format, so the grading
pipeline starts nbgrader without it: every student graded and every nbgrader command saves the time.
"""
import sys

sys.modules.setdefault("rfc3987_syntax", None)  # an import of it now raises ImportError, which jsonschema expects

from nbgrader.apps.nbgraderapp import main  # noqa: E402 (after the line above, on purpose)

if __name__ == "__main__":
    main()
