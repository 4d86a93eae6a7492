"""Product names and descriptions for synthetic articles. The hidden style themes are only visible
through these words, so a text encoder can pick up taste signal that no categorical column carries."""

from __future__ import annotations

import numpy as np

from dc003.data.synthetic_vocab import STYLES, Taxonomy

# style -> (name adjectives, fits, apparel materials, details); one row per entry of STYLES
_STYLE_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "sporty": (("Sporty", "Active", "Dash", "Track"), ("Fitted", "Slim-fit", "Seamless"),
               ("fast-drying functional fabric", "breathable mesh", "technical jersey"),
               ("mesh panels", "reflective details", "a racer back", "side stripes")),
    "romantic": (("Romantic", "Frilled", "Lace", "Petal"), ("Fitted", "Flared", "Wrap-style"),
                 ("soft chiffon", "delicate lace", "airy viscose"),
                 ("frill trims", "scalloped lace edges", "puff sleeves", "a bow at the neckline")),
    "classic": (("Classic", "Timeless", "Tailored", "Heritage"), ("Regular-fit", "Straight-cut", "Tailored"),
                ("cotton twill", "fine-knit wool blend", "crisp poplin"),
                ("a classic collar", "buttoned cuffs", "welt pockets", "a pressed crease")),
    "edgy": (("Edgy", "Biker", "Rock", "Studded"), ("Slim-fit", "Cropped", "Skinny"),
             ("imitation leather", "coated fabric", "black washed denim"),
             ("metal studs", "zip details", "a raw-edge hem", "metal eyelets")),
    "boho": (("Boho", "Festival", "Folk", "Fringe"), ("Loose-fit", "Flowing", "Tiered"),
             ("crinkled cotton", "embroidered voile", "crochet-look knit"),
             ("tassels", "folk embroidery", "smocked panels", "wide flared sleeves")),
    "minimal": (("Minimal", "Clean", "Pure", "Sleek"), ("Straight-cut", "Boxy", "Regular-fit"),
                ("smooth jersey", "lyocell blend", "compact cotton"),
                ("clean lines", "hidden seams", "a concealed zip", "a neat round neckline")),
    "glam": (("Glam", "Sparkle", "Satin", "Velvet"), ("Fitted", "Draped", "Bodycon"),
             ("shimmering satin", "sequined mesh", "metallic knit"),
             ("sequins", "a glittery finish", "a draped neckline", "an open back")),
    "casual": (("Easy", "Relaxed", "Weekend", "Everyday"), ("Relaxed-fit", "Regular-fit", "Loose-fit"),
               ("soft cotton jersey", "washed cotton", "sweatshirt fabric"),
               ("dropped shoulders", "a kangaroo pocket", "ribbed cuffs", "a chest pocket")),
    "preppy": (("Preppy", "College", "Varsity", "Smart"), ("Regular-fit", "Slim-fit", "Pleated"),
               ("cable knit", "oxford cotton", "cotton pique"),
               ("a polo collar", "contrast piping", "a crest appliqué", "pressed pleats")),
    "street": (("Street", "Urban", "Oversized", "Skate"), ("Oversized", "Baggy", "Loose-fit"),
               ("heavyweight cotton", "nylon ripstop", "brushed fleece"),
               ("a large print", "cargo pockets", "a logo patch", "toggles at the hem")),
    "cosy": (("Cosy", "Soft", "Snug", "Fluffy"), ("Relaxed-fit", "Oversized", "Wrap-style"),
             ("teddy fleece", "chunky knit", "brushed jersey"),
             ("a high collar", "a fleece lining", "a wrapover front", "a soft pile")),
    "retro": (("Retro", "Vintage", "Seventies", "Groovy"), ("Flared", "High-waisted", "Regular-fit"),
              ("corduroy", "stonewashed denim", "ribbed velour"),
              ("flared legs", "a wide collar", "a retro print", "patch pockets")),
}  # fmt: skip

# product groups whose articles are not garments get object materials instead of fabrics
_OBJECT_GROUPS = frozenset(
    {"Accessories", "Shoes", "Bags", "Cosmetic", "Items", "Garment and Shoe care", "Stationery",
     "Interior textile", "Furniture", "Fun", "Unknown"}
)  # fmt: skip
_OBJECT_MATERIALS = (
    "metal",
    "imitation leather",
    "recycled plastic",
    "cotton canvas",
    "woven straw",
    "suede",
)
_CLOSINGS = ("Lined.", "Unlined.", "Soft inside.", "Partly made from recycled materials.", "", "", "")
_SYLLABLES = (
    "ka", "lo", "mi", "ra", "ne", "so", "vi", "ta", "lu", "be", "di", "fa", "ge", "ho", "jo", "ki", "le",
    "ma", "no", "pi", "ro", "sa", "te", "va", "za", "al", "el", "in", "or", "un", "bri", "cla", "dre", "fle",
    "gra", "mar", "nel", "ris", "tor", "vel",
)  # fmt: skip


def product_texts(
    tax: Taxonomy, ptype: np.ndarray, style1: np.ndarray, style2: np.ndarray, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """One (prod_name, detail_desc) per product, worded from its type and its two style themes."""
    n = len(ptype)
    syl = np.array(_SYLLABLES)
    parts = rng.integers(0, len(syl), size=(n, 3))
    three = rng.random(n) < 0.35
    picks = rng.integers(0, 1 << 30, size=(n, 6))
    names: list[str] = []
    descs: list[str] = []
    words = [_STYLE_WORDS[s] for s in STYLES]
    for i in range(n):
        t = int(ptype[i])
        type_name = tax.product_type_names[t]
        group = tax.product_group_names[int(tax.group_of_type[t])]
        adjs, fits, materials, details = words[int(style1[i])]
        details2 = words[int(style2[i])][3]
        p = picks[i]
        token = "".join(syl[parts[i, : 3 if three[i] else 2]]).capitalize()
        names.append(f"{token} {adjs[p[0] % len(adjs)].lower()} {type_name.lower()}")
        material = (
            _OBJECT_MATERIALS[p[2] % len(_OBJECT_MATERIALS)]
            if group in _OBJECT_GROUPS
            else materials[p[2] % len(materials)]
        )
        first = details[p[3] % len(details)]
        second = details2[p[4] % len(details2)]
        if second == first:
            second = details[(p[3] + 1) % len(details)]
        fit = fits[p[1] % len(fits)]
        closing = _CLOSINGS[p[5] % len(_CLOSINGS)]
        desc = f"{fit} {type_name.lower()} in {material} with {first} and {second}."
        descs.append(f"{desc} {closing}" if closing else desc)
    return names, descs
