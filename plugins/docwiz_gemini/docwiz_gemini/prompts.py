"""What the plugin asks Gemini: built only from catalog facts, never the patient.

The preview prompt names the procedure, its catalog description and the body
region; the justification instructions frame a prompt the core has written.
"""

from __future__ import annotations

import re

from docwiz.providers import ProcedureInfo

MAX_DESCRIPTION_CHARS = 300

REGION_PHRASES = {
    "nose": "the nose (bridge, tip and nostrils)",
    "eyelids": "the upper and lower eyelids",
    "brow": "the brow and forehead line",
    "lips": "the lips",
    "chin": "the chin",
    "jawline": "the jawline",
    "cheeks": "the cheeks",
    "ears": "the ears",
    "face": "the facial skin and soft tissue",
    "neck": "the neck",
    "breast": "the breasts",
    "abdomen": "the abdomen",
    "waist": "the waist and flanks",
    "arms": "the upper arms",
    "thighs": "the thighs",
    "buttocks": "the buttocks",
    "back": "the back",
    "skin": "the skin surface",
}


def region_phrase(body_region: str) -> str:
    """How the prompt names a catalog body region."""
    cleaned = body_region.strip().lower()
    return REGION_PHRASES.get(cleaned, f"the {cleaned.replace('_', ' ')}")


def preview_prompt(procedure: ProcedureInfo) -> str:
    """The instruction sent with the before photo for one procedure."""
    region = region_phrase(procedure.body_region)
    description = _one_line(procedure.description)[:MAX_DESCRIPTION_CHARS]
    about = f" ({description.rstrip('.')})" if description else ""
    return (
        f"Edit this photograph to preview a realistic, conservative result of "
        f"{procedure.name}{about}. Change only {region}, subtly and in an "
        f"anatomically plausible way, as it would look after full healing. "
        f"Leave everything else exactly as it is: the person's identity and "
        f"other features, skin tone and texture, expression, pose, hair, "
        f"clothing, lighting, colours, background, framing and image size. "
        f"Do not add make-up, filters, retouching, text, watermarks or other "
        f"people. Return one photorealistic image."
    )


def justification_instructions(max_words: int) -> str:
    """System instructions for a claim's medical justification."""
    return (
        "You write medical necessity justifications for health insurance "
        "claims and pre-authorization requests in plastic and reconstructive "
        "surgery. Write formal, factual prose for a utilization reviewer, "
        f"at most {max_words} words, in plain text without markdown, headings, "
        "greetings or signatures. Use only the facts given; do not invent "
        "names, dates, measurements or history."
    )


_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")


def limit_words(text: str, max_words: int) -> str:
    """Cut ``text`` to at most ``max_words`` words, at a sentence end if one
    falls in the second half of the allowance; paragraph breaks are kept."""
    text = text.strip()
    words = list(_WORD.finditer(text))
    if len(words) <= max_words:
        return text

    kept = words[:max_words]
    cut = kept[-1].end()
    for position in range(len(kept) - 1, max_words // 2 - 1, -1):
        if _SENTENCE_END.search(kept[position].group()):
            cut = kept[position].end()
            break
    return text[:cut].rstrip()


def _one_line(text: str) -> str:
    return " ".join(text.split())
