"""A small fixed corpus on distinct topics, and a real PDF made byte by byte."""

from __future__ import annotations

import uuid

SOURDOUGH = """# Sourdough at home

Feed the starter twice a day with equal weights of flour and water until it doubles within six hours.
A lively starter smells sour and fruity, and a spoonful of it floats in water.

Mix the dough at 75 percent hydration, rest it for an hour (the autolyse), then add salt.
Bulk fermentation takes four to six hours at room temperature, with a set of stretch and folds every half hour.

Shape the loaf, proof it overnight in the fridge, and bake it in a preheated Dutch oven at 250 °C:
twenty minutes with the lid on, twenty more with the lid off, until the crust is deep brown.
"""

BICYCLE = """Bicycle maintenance notes

Clean and lubricate the chain every 300 kilometres, more often after riding in rain.
Wipe off the excess oil: a wet chain collects grit that wears the cassette and chainrings.

When gear changes are slow or noisy, turn the barrel adjuster on the rear derailleur a quarter turn at a
time until the chain moves crisply between sprockets.

Check tyre pressure weekly: road tyres want 6 to 7 bar, wider gravel tyres 2.5 to 3.5 bar.
A slow leak that returns after a new inner tube usually means a thorn is still stuck in the tyre casing.

Brakes: replace the pads when the grooves in the rubber have worn away. Squealing rim brakes often
need the pads toed in, so the front of each pad touches the rim a millimetre before the back.
Hydraulic disc brakes that feel spongy need bleeding: push fresh mineral oil through from the
caliper up to the lever until no more air bubbles come out.
"""

INVOICES = """Freelance accounting, 2025

Invoice INV-20931 to Kestrel Logistics for the warehouse dashboard was paid on 14 March, 4,200 EUR.
Invoice INV-20987 to Marlow & Finch is overdue since 30 April; a reminder went out on 5 May.

Quarterly VAT returns are due one month after the end of each quarter. Keep receipts for seven years.
"""

HOUSEPLANTS = """Houseplants

The monstera needs bright indirect light and likes its soil to dry out between waterings.
Yellow lower leaves and a musty smell mean root rot: repot it into fresh, airy mix and trim the black roots.

Succulents want a south window and water only every two to three weeks in winter.
"""

LISBON_PDF_LINES = [
    "Lisbon itinerary, three days in October.",
    "Day one: ride tram 28 through Alfama and Graca, sunset at the Miradouro da Senhora do Monte.",
    "Day two: Belem, the Jeronimos Monastery, and pasteis de nata at the old bakery near it.",
    "Day three: a day trip to Sintra by train from Rossio station; Pena Palace opens at 9:30.",
]

CAT_CONVERSATION = uuid.UUID("7b1f0c3e-2a5d-4e8f-9b6a-1c2d3e4f5a6b")
CAT_QUESTION = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
CAT_ANSWER = uuid.UUID("1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e")
CAT_QUESTION_TEXT = (
    "My cat Mochi is allergic to chicken, so she only gets salmon-based food. Is a grain-free diet better?"
)
CAT_ANSWER_TEXT = (
    "For a cat with a chicken allergy, the protein matters more than the grains: a limited-ingredient "
    "salmon recipe is a good choice, and grain-free is not better in itself. Ask the vet before switching."
)


def make_pdf(lines: list[str], padding: int = 0) -> bytes:
    """A one-page PDF whose text is ``lines`` (ASCII), with a correct cross-reference table;
    ``padding`` bytes of comment make it as large as a test needs."""
    text_ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        text_ops.append(f"({escaped}) Tj T*")
    text_ops.append("ET")
    stream = "\n".join(text_ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    if padding:
        out += b"%" + b"x" * padding + b"\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


BOB_CONVERSATION = uuid.UUID("2c3d4e5f-6a7b-4c8d-8e9f-a0b1c2d3e4f5")
BOB_MESSAGE = uuid.UUID("3d4e5f6a-7b8c-4d9e-8f0a-b1c2d3e4f5a6")
