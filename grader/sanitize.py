"""Student content made inert for every page a TA or student opens: feedback, the formgrader, the class report.

An autograded notebook is student-controlled from end to end: outputs of every mimetype, markdown (raw HTML
and link targets), raw cells, attachments, cell ids, execution counts and metadata. nbconvert's templates
emit much of it verbatim (markdown HTML, raw cells, `text/html`, `application/javascript`, widget state, an
unquoted image width), and nbgrader's feedback and formgrade templates skip even the `sanitize_html` option
for markdown cells. `SanitizeOutputs` therefore rewrites the notebook itself before any template sees it:

  outputs      keep text/plain, image/png, image/jpeg, text/html (cleaned) and text/markdown (made safe);
               an output left with nothing says "[output removed: ...]"; output metadata keeps only
               numeric image sizes;
  markdown     `safe_markdown`: unchanged when nbconvert's own parser finds no raw HTML and no unsafe link
               or image; otherwise rendered by that parser, cleaned by `clean_html` and stored as one
               HTML block that nbconvert passes through as it is;
  raw cells    cleaned, without the `raw_mimetype`/`format` that would make nbconvert emit them raw;
  attachments  PNG and JPEG only;
  metadata     the notebook keeps kernelspec, language_info and nbgrader, each cell nbgrader, deletable,
               editable, collapsed, scrolled and tags, all as flat dicts of plain values (never recursed).

Anything that cannot be sanitized is dropped or replaced by a note: the preprocessor never raises on a
malformed notebook and never lets an unchecked piece through.
"""
from __future__ import annotations

import html
import math
import re
import uuid

import nbformat
import nh3
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
ALLOWED_TAGS = frozenset({
    "p", "div", "span", "br", "hr", "b", "i", "u", "s", "em", "strong", "small", "mark", "del", "ins",
    "code", "pre", "kbd", "samp", "var", "sub", "sup", "blockquote", "q", "cite", "abbr", "dfn",
    "ul", "ol", "li", "dl", "dt", "dd", "table", "caption", "thead", "tbody", "tfoot", "tr", "td", "th",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "img", "figure", "figcaption",
})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
    "abbr": {"title"},
}
# Elements dropped with everything inside them (the rest of the unknown tags only lose the tag itself).
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math", "textarea",
    "title", "xmp", "noembed", "noframes", "select", "button",
})
IMAGE_DATA_URL = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*", re.I)
SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# A value that can be written into an HTML attribute or a JavaScript string unquoted without harm.
PLAIN_STRING = re.compile(r"[^<>\"'`&\x00-\x1f\x7f]*")
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
ATTACHMENT_NAME = re.compile(r"[\w][\w .\-]{0,199}")
ATTACHMENT_PREFIX = "attachment:"

REMOVED_OUTPUT = "[output removed: it contained active content]"
REMOVED_CELL = "[cell removed: it could not be made safe to display]"
REMOVED_MARKDOWN = "[text removed: it could not be made safe to display]"
COMMENT_LINE = "<!-- -->"  # stands in for a blank line, which would end the HTML block early

IMAGE_TYPES = ("image/png", "image/jpeg")
NOTEBOOK_METADATA = ("kernelspec", "language_info", "nbgrader")
REQUIRED_METADATA = {"kernelspec": ("name", "display_name"), "language_info": ("name",)}  # nbformat's schema
CELL_FLAGS = ("deletable", "editable", "collapsed")
MAX_PLAIN_STRING = 1000
MAX_TAGS = 32
MAX_TAG_LENGTH = 64


# --- HTML ----------------------------------------------------------------------------------------

def clean_html(text: str) -> str:
    """HTML reduced to plain formatting: no scripts, handlers, styles, frames, forms or unsafe URLs."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = "" if text is None else str(text)
    return nh3.clean(
        text,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_data_urls_on_images_only,
        url_schemes=set(SAFE_SCHEMES | {"data"}),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def _data_urls_on_images_only(tag: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: a `data:` URL survives only as a PNG, JPEG or GIF image source."""
    if not value.lstrip().lower().startswith("data:"):
        return value
    if tag == "img" and attribute == "src" and IMAGE_DATA_URL.fullmatch(value.strip()):
        return value
    return None


def safe_url(url: str) -> bool:
    """Whether a link or image target is relative or uses http, https or mailto (however it is obfuscated)."""
    if not isinstance(url, str):
        return False
    decoded = url
    for _ in range(5):  # "&amp;#x61;" needs two rounds; more than a few means someone is trying
        unescaped = html.unescape(decoded)
        if unescaped == decoded:
            break
        decoded = unescaped
    # Browsers ignore whitespace and control characters in a scheme, so "java\tscript:" is "javascript:".
    compact = re.sub(r"[\x00-\x20\x7f-\x9f]+", "", decoded).lower()
    match = SCHEME.match(compact)
    return match is None or match.group(1) in SAFE_SCHEMES


# --- markdown ------------------------------------------------------------------------------------

class _AuditingRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, noting raw HTML and any unsafe link, image or diagram it renders."""

    def __init__(self, attachments: dict):
        # Without heading anchors: the cleaned HTML could not keep their ids and classes anyway.
        super().__init__(escape=False, attachments=attachments, exclude_anchor_links=True)
        self.active = False

    def inline_html(self, html_text: str) -> str:
        """Raw inline HTML: noted, rendered as it is (the caller cleans the result)."""
        self.active = True
        return super().inline_html(html_text)

    def block_html(self, html_text: str) -> str:
        """A raw HTML block: noted, rendered as it is (the caller cleans the result)."""
        self.active = True
        return super().block_html(html_text)

    def link(self, text: str, url: str, title: str | None = None) -> str:
        """A link, noted when its target is unsafe."""
        if not safe_url(url):
            self.active = True
        return super().link(text, url, title)

    def image(self, text: str, url: str, title: str | None = None) -> str:
        """An image; an unsafe target or a missing attachment is noted and leaves only the alt text."""
        if url.startswith(ATTACHMENT_PREFIX):
            if url[len(ATTACHMENT_PREFIX):] in self.attachments:
                return super().image(text, url, title)
        elif safe_url(url):
            return super().image(text, url, title)
        self.active = True
        return html.escape(text)

    def block_code(self, code: str, info: str | None = None) -> str:
        """A code block; a mermaid diagram (drawn by script where the page loads mermaid) is noted."""
        if info and info.strip().startswith("mermaid"):
            self.active = True
        return super().block_code(code, info)


def _render_markdown(source: str, attachments: dict) -> tuple[str, bool]:
    """Markdown rendered to HTML by nbconvert's own parser, and whether it held anything active."""
    renderer = _AuditingRenderer(attachments)
    rendered = MarkdownWithMath(renderer=renderer).render(source)
    return rendered, renderer.active


def _html_block(clean: str) -> str:
    """Clean HTML as markdown source that nbconvert's parser passes through unchanged (one HTML block)."""
    lines = [line if line.strip() else COMMENT_LINE for line in clean.strip("\n").splitlines()]
    return "\n".join(["<div>", *lines, "</div>"])


def _passes_through(block: str) -> bool:
    """Whether nbconvert's markdown parser renders `block` as exactly itself."""
    try:
        rendered = MarkdownWithMath(renderer=IPythonRenderer(escape=False)).render(block)
    except Exception:
        return False
    return rendered.strip() == block.strip()


def _already_safe_block(source: str) -> bool:
    """Whether `source` is exactly what `safe_markdown` writes for some clean HTML (so it stays as it is)."""
    lines = source.split("\n")
    if len(lines) < 2 or lines[0] != "<div>" or lines[-1] != "</div>":
        return False
    inner = "\n".join("" if line == COMMENT_LINE else line for line in lines[1:-1])
    return _html_block(clean_html(inner)) == source and _passes_through(source)


def _inert_text(text: str) -> str:
    """Markdown that shows `text` literally: no HTML, link or image can form without `&`, `<`, `>`, `[` or `]`."""
    return (text.replace("&", "&#38;").replace("<", "&#60;").replace(">", "&#62;")
            .replace("[", "&#91;").replace("]", "&#93;"))


def safe_markdown(source: str, attachments: dict | None = None) -> str:
    """Markdown that renders with nothing active: unchanged when it has no raw HTML and no unsafe link or image.

    `attachments` are the cell's (already sanitized) attachments, which `attachment:NAME` images may show; an
    image of any other attachment would make nbconvert fail, so it is treated as unsafe.
    """
    source = _text(source)
    attachments = attachments if isinstance(attachments, dict) else {}
    if _already_safe_block(source):
        return source
    try:
        rendered, active = _render_markdown(source, attachments)
    except Exception:
        rendered, active = None, True
    if not active:
        return source
    if rendered is not None:
        block = _html_block(clean_html(rendered))
        if _passes_through(block):
            return block
    fallback = _inert_text(source)
    try:
        if not _render_markdown(fallback, {})[1]:
            return fallback
    except Exception:
        pass
    return REMOVED_MARKDOWN


# --- plain values ----------------------------------------------------------------------------------

def _text(value) -> str:
    """A notebook text field as one string: a list of lines is joined, anything else that is not text is dropped."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return ""


def _number(value) -> int | float | None:
    """A finite int or float (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plain(value):
    """A bool, finite number or short string free of markup characters, else None."""
    if isinstance(value, bool):
        return value
    if _number(value) is not None:
        return value
    if isinstance(value, str) and len(value) <= MAX_PLAIN_STRING and PLAIN_STRING.fullmatch(value):
        return value
    return None


def _flat_dict(value) -> dict:
    """The plain-valued, string-keyed entries of a dict (nested values are dropped, never visited)."""
    if not isinstance(value, dict):
        return {}
    flat = {}
    for key, item in value.items():
        if isinstance(key, str) and _plain(key) is not None and _plain(item) is not None:
            flat[key] = item
    return flat


def _nbgrader_metadata(value) -> dict:
    """nbgrader's cell metadata as plain values; a grader's comment is kept as safe markdown."""
    flat = _flat_dict(value)
    if isinstance(value, dict) and isinstance(value.get("comment"), str):
        flat["comment"] = safe_markdown(value["comment"])
    return flat


def _base64(value) -> str | None:
    """Base64 image data without whitespace, or None when it is anything else."""
    text = _text(value)
    compact = re.sub(r"\s+", "", text)
    return compact if compact and BASE64.fullmatch(compact) else None


# --- cells, outputs, metadata ------------------------------------------------------------------------

def _notebook_metadata(value) -> dict:
    """Notebook metadata reduced to kernelspec, language_info and nbgrader (flat; widget state is dropped).

    A kernelspec or language_info that lost a field nbformat requires is dropped whole: nbconvert validates
    the notebook after each preprocessor and would refuse to render it.
    """
    if not isinstance(value, dict):
        return {}
    metadata = {}
    for key in NOTEBOOK_METADATA:
        flat = _flat_dict(value.get(key))
        required = REQUIRED_METADATA.get(key, ())
        if isinstance(value.get(key), dict) and all(isinstance(flat.get(name), str) for name in required):
            metadata[key] = flat
    return metadata


def _tags(value) -> list[str]:
    """Cell tags: distinct short plain strings without commas (nbformat's rule), at most MAX_TAGS of them."""
    if not isinstance(value, (list, tuple)):
        return []
    tags = []
    for tag in value:
        if (isinstance(tag, str) and 0 < len(tag) <= MAX_TAG_LENGTH and "," not in tag and _plain(tag) is not None
                and tag not in tags):
            tags.append(tag)
    return tags[:MAX_TAGS]


def _cell_metadata(value) -> dict:
    """Cell metadata reduced to nbgrader, deletable, editable, collapsed, scrolled and tags."""
    if not isinstance(value, dict):
        return {}
    metadata = {}
    if isinstance(value.get("nbgrader"), dict):
        metadata["nbgrader"] = _nbgrader_metadata(value["nbgrader"])
    for flag in CELL_FLAGS:
        if isinstance(value.get(flag), bool):
            metadata[flag] = value[flag]
    if isinstance(value.get("scrolled"), bool) or value.get("scrolled") == "auto":
        metadata["scrolled"] = value["scrolled"]
    if "tags" in value:
        metadata["tags"] = _tags(value["tags"])
    return metadata


def _attachments(value) -> dict:
    """Cell attachments reduced to PNG and JPEG images with plain names and valid base64 data."""
    if not isinstance(value, dict):
        return {}
    kept = {}
    for name, bundle in value.items():
        if not (isinstance(name, str) and ATTACHMENT_NAME.fullmatch(name) and isinstance(bundle, dict)):
            continue
        images = {mime: data for mime in IMAGE_TYPES if (data := _base64(bundle.get(mime))) is not None}
        if images:
            kept[name] = images
    return kept


def _mime_bundle(value) -> dict:
    """An output's data reduced to the whitelisted mimetypes, HTML cleaned and markdown made safe."""
    if not isinstance(value, dict):
        return {}
    data = {}
    if "text/plain" in value:
        data["text/plain"] = _text(value["text/plain"])
    for mime in IMAGE_TYPES:
        if (image := _base64(value.get(mime))) is not None:
            data[mime] = image
    if "text/html" in value:
        data["text/html"] = clean_html(_text(value["text/html"]))
    if "text/markdown" in value:
        data["text/markdown"] = safe_markdown(value["text/markdown"])
    return data


def _image_sizes(value, data: dict) -> dict:
    """Output metadata reduced to the numeric width and height of the images still in `data`."""
    if not isinstance(value, dict):
        return {}
    sizes = {}
    for mime in IMAGE_TYPES:
        if mime in data and isinstance(value.get(mime), dict):
            size = {key: value[mime][key] for key in ("width", "height") if _number(value[mime].get(key)) is not None}
            if size:
                sizes[mime] = size
    return sizes


def _execution_count(value) -> int | None:
    """An execution count: an int from 0 (not a bool), else None (a template writes it into the page as it is)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _removed_output() -> dict:
    """The display_data that stands where an output was removed."""
    return {"output_type": "display_data", "data": {"text/plain": REMOVED_OUTPUT}, "metadata": {}}


def _output(value) -> dict:
    """One output, sanitized: streams and errors as text, rich outputs with whitelisted data only."""
    if not isinstance(value, dict):
        return _removed_output()
    kind = value.get("output_type")
    if kind == "stream":
        name = value.get("name") if value.get("name") in ("stdout", "stderr") else "stdout"
        return {"output_type": "stream", "name": name, "text": _text(value.get("text"))}
    if kind == "error":
        traceback = value.get("traceback")
        lines = [line for line in traceback if isinstance(line, str)] if isinstance(traceback, list) else []
        return {"output_type": "error", "ename": _text(value.get("ename")), "evalue": _text(value.get("evalue")),
                "traceback": lines}
    if kind not in ("display_data", "execute_result"):
        return _removed_output()
    data = _mime_bundle(value.get("data"))
    output = {"output_type": kind, "data": data or {"text/plain": REMOVED_OUTPUT},
              "metadata": _image_sizes(value.get("metadata"), data)}
    if kind == "execute_result":
        output["execution_count"] = _execution_count(value.get("execution_count"))
    return output


def _cell_id(value, index: int) -> str:
    """The cell's id when it is a valid nbformat id, else a fresh one (a template writes it into an attribute)."""
    if isinstance(value, str) and CELL_ID.fullmatch(value):
        return value
    return f"sanitized-{index}-{uuid.uuid4().hex[:8]}"


def _cell(value, index: int, with_id: bool) -> dict:
    """One cell, sanitized according to its type (an unknown type becomes a cleaned raw cell)."""
    if not isinstance(value, dict):
        return _note_cell(index, with_id)
    kind = value.get("cell_type")
    cell = {"metadata": _cell_metadata(value.get("metadata"))}
    if with_id:
        cell["id"] = _cell_id(value.get("id"), index)
    source = _text(value.get("source"))
    if kind == "code":
        outputs = value.get("outputs") if isinstance(value.get("outputs"), list) else []
        cell.update(cell_type="code", source=source, execution_count=_execution_count(value.get("execution_count")),
                    outputs=[_output(output) for output in outputs])
    elif kind == "markdown":
        attachments = _attachments(value.get("attachments"))
        cell.update(cell_type="markdown", source=safe_markdown(source, attachments))
        if attachments:
            cell["attachments"] = attachments
    else:
        cell.update(cell_type="raw", source=clean_html(source))
    return cell


def _note_cell(index: int, with_id: bool) -> dict:
    """The markdown cell that stands where a cell could not be sanitized."""
    cell = {"cell_type": "markdown", "metadata": {}, "source": REMOVED_CELL}
    if with_id:
        cell["id"] = _cell_id(None, index)
    return cell


def _has_cell_ids(nb) -> bool:
    """Whether the notebook's format (4.5 and later) requires cell ids."""
    major, minor = nb.get("nbformat"), nb.get("nbformat_minor")
    return isinstance(major, int) and isinstance(minor, int) and (major, minor) >= (4, 5)


def sanitize_notebook(nb) -> None:
    """Make every student-controlled part of `nb` inert, in place (see the module's docstring)."""
    cells = nb.get("cells") if isinstance(nb.get("cells"), list) else []
    with_id = _has_cell_ids(nb)
    sanitized = []
    for index, cell in enumerate(cells):
        try:
            sanitized.append(_cell(cell, index, with_id))
        except Exception:  # an input this module did not foresee: the cell goes, never unchecked
            sanitized.append(_note_cell(index, with_id))
    nb["cells"] = [nbformat.from_dict(cell) for cell in sanitized]
    nb["metadata"] = nbformat.from_dict(_notebook_metadata(nb.get("metadata")))


class SanitizeOutputs(NbGraderPreprocessor):
    """Make a notebook safe to render: no student HTML, script, style, frame or unsafe link survives."""

    # Unused. nbconvert's HTMLExporter configures `NbConvertBase.display_data_priority` for each preprocessor
    # it builds; declared configurable here so that every render does not warn that it is not recognized.
    display_data_priority = List().tag(config=True)

    def preprocess(self, nb, resources):
        """Sanitize the whole notebook in place and return it with the resources unchanged."""
        sanitize_notebook(nb)
        return nb, resources
