"""Collection: the only part of the grader a sandboxed autograde kernel can import or read.

A hidden test cell calls `store(grade_id, collector, *student_objects)`. The collector calls the
student's code on inputs drawn from the submission's secret seed (handed to the kernel by the TA's
process in `.aecourse/inputs.json`) and returns plain tensors and numbers; `store` writes them in the
format of `record.py` (safetensors plus a small JSON document) to
`.aecourse/collected/<grade_id>.safetensors` in the kernel's scratch folder. Nothing here decides a grade: no judge, no
threshold, no reference figure and no reference implementation of a graded function lives in this
package. The TA's process judges what was stored (`grader.judge`).
"""
