"""XML documents of the protocol: built with ElementTree, parsed (untrusted) only with defusedxml.

Every message is one root element whose fields are attributes, with at most one kind of empty
child element (a transaction's `<Record>`, a receipt's `<Received>`, an index's `<File>`).
`message_root` refuses DTDs, entity declarations and external references, and says why.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

CONTENT_TYPE_XML = "application/xml"
MAX_XML_BYTES = 1024 * 1024


def build(
    tag: str, attrs: Mapping[str, str], children: Iterable[tuple[str, Mapping[str, str]]] = ()
) -> bytes:
    """`<?xml ...?><tag attrs...><child attrs.../>...</tag>` in UTF-8."""
    root = ET.Element(tag, dict(attrs))
    for child_tag, child_attrs in children:
        ET.SubElement(root, child_tag, dict(child_attrs))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def message_root(body: bytes) -> ET.Element:
    """Parse untrusted XML with defusedxml; ValueError names why it was refused."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ValueError(f"XML body must be bytes, got {type(body).__name__}")
    body = bytes(body)
    if not body.strip():
        raise ValueError("empty body: expected an XML document")
    if len(body) > MAX_XML_BYTES:
        raise ValueError(f"XML body of {len(body)} bytes is larger than the {MAX_XML_BYTES} allowed")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden as exc:
        raise ValueError("XML with a DOCTYPE (DTD) is refused") from exc
    except defusedxml.EntitiesForbidden as exc:
        raise ValueError(f"XML entity declaration {exc.name!r} is refused") from exc
    except defusedxml.ExternalReferenceForbidden as exc:
        raise ValueError(f"XML external reference {exc.sysid!r} is refused") from exc
    except defusedxml.DefusedXmlException as exc:
        raise ValueError(f"XML refused: {exc}") from exc
    except ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from exc
    except (UnicodeError, LookupError) as exc:
        raise ValueError(f"XML has a bad encoding: {exc}") from exc
    if not isinstance(root, ET.Element):  # pragma: no cover - defusedxml returns an Element
        raise ValueError("XML document has no root element")
    return root


def expect_root(body: bytes, tag: str, *, children: str | None = None) -> ET.Element:
    """The root of `body`, which must be `<tag>` with no text and only `<children>` children (or none)."""
    root = message_root(body)
    if root.tag != tag:
        raise ValueError(f"root element is <{root.tag}>, expected <{tag}>")
    for child in root:
        if children is None:
            raise ValueError(f"<{tag}> has a child <{child.tag}>; it takes no child elements")
        if child.tag != children:
            raise ValueError(f"<{tag}> has a child <{child.tag}>; expected only <{children}> children")
    if root.text and root.text.strip():
        raise ValueError(f"<{tag}> has text content {root.text.strip()[:40]!r}; expected none")
    return root


def attr(el: ET.Element, name: str) -> str:
    """The attribute `name` of `el`; ValueError when it is missing."""
    value = el.get(name)
    if value is None:
        raise ValueError(f"<{el.tag}> lacks the attribute {name!r}")
    return value
