"""TA-side package for the autoencoders assignment: hidden checks, reference figures, grading pipeline, CLI.

Never copied to students: hidden test cells import it only while nbgrader autogrades.
"""
