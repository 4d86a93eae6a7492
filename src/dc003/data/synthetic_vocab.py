"""The fixed fashion taxonomy behind the synthetic H&M-layout data: hand-written vocabularies and
their hierarchy (index group > index > section > department; product group > product type; colour
group > perceived colour master). Built by a pure function, identical for every seed, so that
category names and codes mean the same thing at every scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (index code, index name, index group) in index order
_INDEXES: tuple[tuple[str, str, str], ...] = (
    ("A", "Womenswear", "Womenswear"),
    ("B", "Lingerie & Hosiery", "Womenswear"),
    ("C", "Womens Accessories", "Womenswear"),
    ("D", "Young", "Young Fashion"),
    ("F", "Menswear", "Menswear"),
    ("G", "Baby 0-2", "Kids"),
    ("H", "Kids 2-8", "Kids"),
    ("I", "Kids 8-14", "Kids"),
    ("J", "Kids Accessories & Swim", "Kids"),
    ("S", "Active", "Sport & Active"),
)
_INDEX_GROUPS = ("Womenswear", "Young Fashion", "Menswear", "Kids", "Sport & Active")

# topic key -> (label used in department names, garment group, product types sold, price ladder step)
_TOPICS: dict[str, tuple[str, str, tuple[str, ...], int]] = {
    "jersey": (
        "Jersey",
        "Jersey Fashion",
        ("T-shirt", "Top", "Long-sleeve top", "Tank top", "Crop top", "Bodysuit"),
        7,
    ),
    "prints": (
        "Printed Tops",
        "Jersey Fashion",
        ("T-shirt", "Sweatshirt", "Long-sleeve top", "Polo shirt"),
        8,
    ),
    "basics": ("Basics", "Jersey Basics", ("T-shirt", "Vest top", "Top", "Leggings", "Long-sleeve top"), 5),
    "knit": ("Knitwear", "Knitwear", ("Sweater", "Cardigan", "Turtleneck", "Knitted vest"), 12),
    "blouse": ("Shirts & Blouses", "Shirts & Blouses", ("Blouse", "Shirt", "Tunic"), 11),
    "trousers": (
        "Trousers",
        "Trousers",
        ("Trousers", "Chinos", "Cargo trousers", "Culottes", "Wide trousers"),
        12,
    ),
    "denim": ("Denim", "Denim", ("Jeans", "Jeggings", "Denim shorts", "Denim jacket", "Skirt"), 13),
    "dresses": ("Dresses", "Dresses", ("Dress", "Jumpsuit", "Playsuit", "Kaftan"), 13),
    "skirts": ("Skirts", "Skirts", ("Skirt",), 10),
    "shorts": ("Shorts", "Shorts", ("Shorts",), 8),
    "outer": (
        "Outerwear",
        "Outerwear",
        ("Jacket", "Coat", "Parka", "Gilet", "Raincoat", "Puffer jacket"),
        17,
    ),
    "tailoring": ("Tailoring", "Tailoring", ("Blazer", "Suit trousers", "Shirt", "Waistcoat", "Tie"), 16),
    "sweats": ("Sweats", "Jersey Fashion", ("Hoodie", "Sweatshirt", "Joggers", "Sweatpants"), 10),
    "lounge": ("Loungewear", "Jersey Fashion", ("Lounge set", "Joggers", "Hoodie", "Robe"), 10),
    "shoes": (
        "Shoes",
        "Footwear",
        (
            "Sneakers",
            "Boots",
            "Ankle boots",
            "Sandals",
            "Ballet flats",
            "Heels",
            "Loafers",
            "Slippers",
            "Espadrilles",
            "Flip flops",
        ),
        14,
    ),
    "accs": (
        "Accessories",
        "Accessories",
        (
            "Scarf",
            "Hat",
            "Cap",
            "Beanie",
            "Gloves",
            "Belt",
            "Sunglasses",
            "Hair clip",
            "Hairband",
            "Umbrella",
        ),
        4,
    ),
    "jewel": (
        "Jewellery",
        "Accessories",
        ("Earrings", "Necklace", "Bracelet", "Ring", "Watch", "Keychain"),
        3,
    ),
    "bags": (
        "Bags",
        "Accessories",
        ("Handbag", "Backpack", "Tote bag", "Shoulder bag", "Belt bag", "Cross-body bag", "Wallet"),
        9,
    ),
    "linger": (
        "Lingerie",
        "Underwear, Nightwear",
        ("Bra", "Briefs", "Thong", "Bralette", "Shapewear", "Underwear set"),
        6,
    ),
    "under": ("Underwear", "Underwear, Nightwear", ("Briefs", "Boxers", "Undershirt", "Long johns"), 4),
    "night": (
        "Nightwear",
        "Underwear, Nightwear",
        ("Pyjamas", "Nightgown", "Robe", "Sleep shorts", "Sleep top", "Sleep bra"),
        8,
    ),
    "hosiery": ("Socks & Tights", "Socks & Hosiery", ("Socks", "Tights", "Knee socks", "Leg warmers"), 2),
    "swim": (
        "Swimwear",
        "Swimwear",
        ("Bikini top", "Bikini bottoms", "Swimsuit", "Swim shorts", "Beach cover-up", "Swim shirt"),
        7,
    ),
    "beauty": (
        "Beauty",
        "Accessories",
        ("Lip gloss", "Nail polish", "Face mask", "Hand cream", "Perfume"),
        3,
    ),
    "baby": ("Baby Sets", "Baby Mix", ("Romper", "Bodysuit", "Dungarees", "Sleepsuit", "Baby set"), 6),
    "kidsdress": ("Dresses & Skirts", "Kids Dresses", ("Dress", "Skirt", "Pinafore dress"), 8),
    "active": (
        "Active",
        "Activewear",
        ("Sports top", "Sports bra", "Sports leggings", "Running shorts", "Track jacket", "Tracksuit"),
        11,
    ),
    "offers": ("Offers", "Special Offers", ("T-shirt", "Socks", "Leggings", "Briefs", "Unknown"), 1),
    "home": ("Home", "Unknown", ("Cushion cover", "Blanket", "Towel", "Stool", "Side table"), 9),
    "gifts": (
        "Gifts & Fun",
        "Unknown",
        ("Costume", "Party hat", "Notebook", "Pencil case", "Sticker set", "Water bottle", "Phone case"),
        3,
    ),
    "care": ("Care", "Unknown", ("Shoe polish", "Lint roller", "Clothes brush"), 2),
}

# (section name, index code, topics sold, premium price steps, favoured styles); words are keys
_SECTIONS: tuple[tuple[str, str, str, int, str], ...] = (
    ("Womens Everyday", "A",
     "jersey basics knit trousers dresses skirts shorts blouse outer lounge", 0, "casual minimal"),
    ("Womens Tailoring", "A", "tailoring trousers blouse dresses outer", 2, "classic minimal"),
    ("Womens Trend", "A",
     "jersey blouse dresses skirts trousers knit outer prints accs", 0, "boho retro romantic"),
    ("Womens Casual", "A", "jersey sweats denim shorts knit outer prints lounge", 0, "casual street"),
    ("Womens Premium", "A", "knit blouse dresses trousers outer accs", 4, "classic minimal glam"),
    ("Womens Denim", "A", "denim jersey shorts skirts", 0, "retro casual edgy"),
    ("Womens Outerwear", "A", "outer knit accs", 1, "classic cosy"),
    ("Womens Shoes", "A", "shoes care", 0, "classic glam casual"),
    ("Maternity", "A", "basics dresses trousers linger night", 0, "cosy minimal"),
    ("Womens Party", "A", "dresses skirts jewel shoes blouse", 1, "glam romantic"),
    ("Womens Lingerie", "B", "linger under offers", 0, "romantic minimal"),
    ("Womens Nightwear", "B", "night basics", 0, "cosy romantic"),
    ("Womens Hosiery", "B", "hosiery offers", 0, "classic minimal"),
    ("Womens Swim", "B", "swim accs shoes", 0, "boho glam sporty"),
    ("Womens Bags", "C", "bags care", 1, "classic minimal"),
    ("Womens Jewellery", "C", "jewel offers", 0, "glam boho"),
    ("Womens Small Accessories", "C", "accs hosiery gifts", 0, "classic cosy"),
    ("Womens Beauty", "C", "beauty gifts", 0, "glam minimal"),
    ("Home & Lifestyle", "C", "home gifts care", 0, "cosy minimal"),
    ("Young Girls Tops", "D", "jersey basics knit blouse sweats prints", 0, "street romantic retro"),
    ("Young Girls Bottoms", "D", "trousers denim skirts shorts", 0, "street retro"),
    ("Young Boys", "D", "jersey sweats denim trousers outer shorts prints", 0, "street edgy"),
    ("Young Accessories", "D", "accs jewel bags beauty", 0, "glam street"),
    ("Young Denim", "D", "denim outer", 0, "edgy retro"),
    ("Young Basics", "D", "basics under hosiery night", 0, "casual minimal"),
    ("Young Party", "D", "dresses skirts shoes jewel", 0, "glam edgy"),
    ("Mens Everyday", "F", "jersey basics knit trousers shorts prints outer", 0, "casual classic"),
    ("Mens Tailoring", "F", "tailoring blouse trousers shoes", 2, "classic preppy"),
    ("Mens Casual", "F", "jersey sweats blouse shorts knit lounge", 0, "casual preppy"),
    ("Mens Denim", "F", "denim jersey outer", 0, "edgy retro"),
    ("Mens Outerwear", "F", "outer knit accs", 1, "classic cosy"),
    ("Mens Shoes", "F", "shoes care", 1, "classic street"),
    ("Mens Underwear", "F", "under hosiery night swim", 0, "minimal sporty"),
    ("Mens Accessories", "F", "accs bags jewel", 0, "classic street"),
    ("Mens Streetwear", "F", "sweats jersey trousers accs shoes prints", 0, "street edgy"),
    ("Mens Premium", "F", "knit blouse trousers outer tailoring", 4, "classic minimal"),
    ("Mens Basics", "F", "basics under hosiery", 0, "minimal casual"),
    ("Mens Offers", "F", "offers basics", 0, "casual"),
    ("Baby Girl", "G", "baby kidsdress jersey knit outer", 0, "romantic cosy"),
    ("Baby Boy", "G", "baby jersey trousers knit outer", 0, "casual cosy"),
    ("Baby Essentials", "G", "baby basics night hosiery accs", 0, "cosy minimal"),
    ("Newborn", "G", "baby basics knit home", 0, "cosy minimal"),
    ("Kids Girl", "H", "jersey kidsdress trousers knit denim shorts prints outer", 0, "romantic casual"),
    ("Kids Boy", "H", "jersey trousers denim knit shorts sweats prints outer", 0, "casual sporty"),
    ("Kids Outerwear", "H", "outer accs shoes", 0, "cosy sporty"),
    ("Kids Basics", "H", "basics under night hosiery offers", 0, "casual cosy"),
    ("Teen Girl", "I", "jersey kidsdress denim trousers knit sweats prints", 0, "street romantic"),
    ("Teen Boy", "I", "jersey denim trousers sweats outer shorts prints", 0, "street sporty"),
    ("Teen Basics", "I", "basics under night hosiery", 0, "casual minimal"),
    ("Kids Accessories", "J", "accs bags jewel gifts", 0, "casual glam"),
    ("Kids Swim", "J", "swim accs", 0, "sporty casual"),
    ("Kids Shoes", "J", "shoes hosiery", 0, "sporty casual"),
    ("Kids Party & Play", "J", "kidsdress gifts offers home", 0, "glam romantic"),
    ("Womens Active", "S", "active shoes accs swim outer basics lounge", 1, "sporty minimal"),
    ("Mens Active", "S", "active shoes accs outer shorts basics lounge", 1, "sporty street"),
    ("Active Accessories", "S", "accs bags hosiery shoes gifts", 0, "sporty"),
)  # fmt: skip

# product group -> its product types; "Unknown" is the real data's catch-all with code -1
_PRODUCT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Garment Upper body", (
        "T-shirt", "Top", "Long-sleeve top", "Vest top", "Tank top",
        "Crop top", "Bodysuit", "Blouse", "Shirt",
        "Tunic", "Polo shirt", "Sweater", "Cardigan", "Turtleneck", "Knitted vest", "Hoodie", "Sweatshirt",
        "Jacket", "Coat", "Parka", "Gilet", "Raincoat",
        "Puffer jacket", "Blazer", "Waistcoat", "Denim jacket",
        "Track jacket", "Sports top")),
    ("Garment Lower body", (
        "Trousers", "Chinos", "Cargo trousers", "Culottes", "Wide trousers", "Jeans", "Jeggings", "Shorts",
        "Denim shorts", "Skirt", "Leggings", "Joggers", "Sweatpants", "Suit trousers", "Sports leggings",
        "Running shorts")),
    ("Garment Full body", (
        "Dress", "Jumpsuit", "Playsuit", "Kaftan", "Dungarees", "Romper", "Sleepsuit", "Pinafore dress",
        "Tracksuit", "Baby set")),
    ("Accessories", (
        "Scarf", "Hat", "Cap", "Beanie", "Gloves", "Belt", "Sunglasses", "Hair clip", "Hairband", "Earrings",
        "Necklace", "Bracelet", "Ring", "Watch", "Tie", "Keychain", "Umbrella", "Wallet")),
    ("Underwear", (
        "Bra", "Briefs", "Thong", "Bralette", "Shapewear",
        "Underwear set", "Boxers", "Undershirt", "Long johns",
        "Sports bra")),
    ("Shoes", (
        "Sneakers", "Boots", "Ankle boots", "Sandals", "Ballet flats", "Heels", "Loafers", "Slippers",
        "Espadrilles", "Flip flops")),
    ("Swimwear", ("Bikini top", "Bikini bottoms", "Swimsuit", "Swim shorts", "Beach cover-up", "Swim shirt")),
    ("Socks & Tights", ("Socks", "Tights", "Knee socks", "Leg warmers")),
    ("Nightwear", ("Pyjamas", "Nightgown", "Robe", "Sleep shorts", "Sleep top")),
    ("Bags", ("Handbag", "Backpack", "Tote bag", "Shoulder bag", "Belt bag", "Cross-body bag")),
    ("Cosmetic", ("Lip gloss", "Nail polish", "Face mask", "Hand cream", "Perfume")),
    ("Items", ("Water bottle", "Phone case")),
    ("Garment and Shoe care", ("Shoe polish", "Lint roller", "Clothes brush")),
    ("Stationery", ("Notebook", "Pencil case", "Sticker set")),
    ("Interior textile", ("Cushion cover", "Blanket", "Towel")),
    ("Furniture", ("Stool", "Side table")),
    ("Fun", ("Costume", "Party hat")),
    ("Lounge & Sleep", ("Lounge set", "Sleep bra")),
    ("Unknown", ("Unknown",)),
)  # fmt: skip

_GARMENT_GROUPS = (
    "Jersey Fashion", "Jersey Basics", "Knitwear", "Shirts & Blouses", "Trousers",
    "Denim", "Dresses", "Skirts",
    "Shorts", "Outerwear", "Tailoring", "Footwear", "Accessories", "Underwear, Nightwear", "Socks & Hosiery",
    "Swimwear", "Baby Mix", "Kids Dresses", "Activewear", "Special Offers", "Unknown",
)  # fmt: skip

_COLOUR_MASTERS = (
    "Black", "White", "Grey", "Beige", "Brown", "Red", "Pink",
    "Orange", "Yellow", "Green", "Olive", "Turquoise",
    "Blue", "Navy", "Purple", "Taupe", "Metallic", "Teal", "Mustard", "Undefined",
)  # fmt: skip
# perceived colour values; the last is the real data's "-1 Unknown" bucket
_COLOUR_VALUES = ("Dark", "Medium Dark", "Medium", "Soft Light", "Light", "Bright", "Undefined", "Unknown")

# colour group -> (perceived colour master, usual perceived value)
_COLOURS: tuple[tuple[str, str, str], ...] = (
    ("Black", "Black", "Dark"), ("Jet Black", "Black", "Dark"), ("Charcoal", "Grey", "Dark"),
    ("Dark Grey", "Grey", "Medium Dark"), ("Grey", "Grey", "Medium"), ("Light Grey", "Grey", "Soft Light"),
    ("Silver", "Metallic", "Light"), ("White", "White", "Light"), ("Off White", "White", "Soft Light"),
    ("Cream", "Beige", "Soft Light"), ("Ivory", "White", "Light"), ("Beige", "Beige", "Soft Light"),
    ("Sand", "Beige", "Medium"), ("Camel", "Brown", "Medium"), ("Greige", "Taupe", "Medium"),
    ("Brown", "Brown", "Medium Dark"), ("Chocolate", "Brown", "Dark"), ("Rust", "Orange", "Medium Dark"),
    ("Terracotta", "Orange", "Medium"), ("Red", "Red", "Bright"), ("Burgundy", "Red", "Dark"),
    ("Coral", "Orange", "Bright"), ("Pink", "Pink", "Medium"), ("Light Pink", "Pink", "Soft Light"),
    ("Hot Pink", "Pink", "Bright"), ("Dusty Rose", "Pink", "Soft Light"), ("Orange", "Orange", "Bright"),
    ("Peach", "Orange", "Light"), ("Yellow", "Yellow", "Bright"), ("Light Yellow", "Yellow", "Light"),
    ("Mustard Yellow", "Mustard", "Medium"), ("Gold", "Metallic", "Medium"), ("Green", "Green", "Medium"),
    ("Light Green", "Green", "Light"), ("Mint", "Green", "Soft Light"), ("Olive", "Olive", "Medium Dark"),
    ("Khaki", "Olive", "Medium"), ("Dark Green", "Green", "Dark"), ("Turquoise", "Turquoise", "Bright"),
    ("Aqua", "Turquoise", "Light"), ("Teal", "Teal", "Medium Dark"), ("Blue", "Blue", "Medium"),
    ("Light Blue", "Blue", "Light"), ("Denim Blue", "Blue", "Medium Dark"), ("Royal Blue", "Blue", "Bright"),
    ("Navy", "Navy", "Dark"), ("Lilac", "Purple", "Soft Light"), ("Purple", "Purple", "Medium"),
    ("Plum", "Purple", "Dark"), ("Multicolour", "Undefined", "Undefined"),
)  # fmt: skip

_GRAPHICAL = (
    "Solid", "Stripe", "All-over pattern", "Melange", "Check", "Denim wash", "Dots", "Front print",
    "Placement print", "Floral", "Animal print", "Embroidery", "Lace", "Glitter", "Metallic sheen", "Sequins",
    "Colour block", "Jacquard", "Contrast trim", "Slub", "Treated",
    "Mesh", "Camouflage", "Tie-dye", "Paisley",
    "Houndstooth", "Argyle", "Neps", "Other pattern", "Unknown",
)  # fmt: skip


@dataclass(frozen=True)
class Taxonomy:
    """Every vocabulary with its codes, and the hierarchy as integer parent arrays."""

    index_group_names: tuple[str, ...]
    index_codes: tuple[str, ...]
    index_names: tuple[str, ...]
    index_group_of_index: np.ndarray
    section_names: tuple[str, ...]
    section_nos: np.ndarray
    index_of_section: np.ndarray
    section_premium: np.ndarray  # price-ladder steps added for the section's articles
    section_styles: tuple[tuple[int, ...], ...]  # favoured style themes per section
    department_names: tuple[str, ...]
    department_nos: np.ndarray
    section_of_department: np.ndarray
    topic_of_department: np.ndarray
    topic_keys: tuple[str, ...]
    topic_garment_group: np.ndarray
    topic_price_step: np.ndarray
    topic_types: tuple[np.ndarray, ...]  # product types each topic sells
    garment_group_names: tuple[str, ...]
    garment_group_nos: np.ndarray
    product_group_names: tuple[str, ...]
    product_type_names: tuple[str, ...]
    product_type_nos: np.ndarray
    group_of_type: np.ndarray
    colour_names: tuple[str, ...]
    colour_codes: np.ndarray
    master_of_colour: np.ndarray
    value_of_colour: np.ndarray
    colour_master_names: tuple[str, ...]
    colour_master_ids: np.ndarray
    colour_value_names: tuple[str, ...]
    colour_value_ids: np.ndarray
    graphical_names: tuple[str, ...]
    graphical_nos: np.ndarray
    style_names: tuple[str, ...]

    @property
    def n_departments(self) -> int:
        return len(self.department_names)


STYLES = (
    "sporty", "romantic", "classic", "edgy", "boho", "minimal", "glam", "casual", "preppy", "street", "cosy",
    "retro",
)  # fmt: skip


def build_taxonomy() -> Taxonomy:
    """Assemble the fixed taxonomy; codes follow fixed formulas so they never depend on a seed."""
    index_codes = tuple(c for c, _, _ in _INDEXES)
    type_names = tuple(t for _, types in _PRODUCT_GROUPS for t in types)
    group_of_type = np.array(
        [g for g, (_, types) in enumerate(_PRODUCT_GROUPS) for _ in types], dtype=np.int16
    )
    type_pos = {name: i for i, name in enumerate(type_names)}
    topics = list(_TOPICS)
    gg_pos = {name: i for i, name in enumerate(_GARMENT_GROUPS)}
    style_pos = {name: i for i, name in enumerate(STYLES)}

    dept_names: list[str] = []
    dept_section: list[int] = []
    dept_topic: list[int] = []
    for s, (section, _, section_topics, _, _) in enumerate(_SECTIONS):
        for topic in section_topics.split():
            dept_names.append(f"{section} {_TOPICS[topic][0]}")
            dept_section.append(s)
            dept_topic.append(topics.index(topic))
    n_dept = len(dept_names)
    # product type numbers: unique 2-3 digit codes; the catch-all "Unknown" is -1 as in the real data
    type_nos = np.array(
        [-1 if t == "Unknown" else 61 + 4 * i for i, t in enumerate(type_names)], dtype=np.int32
    )
    master_pos = {name: i for i, name in enumerate(_COLOUR_MASTERS)}
    value_pos = {name: i for i, name in enumerate(_COLOUR_VALUES)}
    return Taxonomy(
        index_group_names=_INDEX_GROUPS,
        index_codes=index_codes,
        index_names=tuple(n for _, n, _ in _INDEXES),
        index_group_of_index=np.array([_INDEX_GROUPS.index(g) for _, _, g in _INDEXES], dtype=np.int16),
        section_names=tuple(s[0] for s in _SECTIONS),
        # two-digit section numbers in a scrambled but fixed order (37 is coprime with 89)
        section_nos=np.array([10 + (37 * s) % 89 for s in range(len(_SECTIONS))], dtype=np.int32),
        index_of_section=np.array([index_codes.index(s[1]) for s in _SECTIONS], dtype=np.int16),
        section_premium=np.array([s[3] for s in _SECTIONS], dtype=np.int16),
        section_styles=tuple(tuple(style_pos[x] for x in s[4].split()) for s in _SECTIONS),
        department_names=tuple(dept_names),
        department_nos=np.array([1201 + 29 * d for d in range(n_dept)], dtype=np.int32),
        section_of_department=np.array(dept_section, dtype=np.int16),
        topic_of_department=np.array(dept_topic, dtype=np.int16),
        topic_keys=tuple(topics),
        topic_garment_group=np.array([gg_pos[_TOPICS[t][1]] for t in topics], dtype=np.int16),
        topic_price_step=np.array([_TOPICS[t][3] for t in topics], dtype=np.int16),
        topic_types=tuple(np.array([type_pos[x] for x in _TOPICS[t][2]], dtype=np.int16) for t in topics),
        garment_group_names=_GARMENT_GROUPS,
        garment_group_nos=np.arange(1001, 1001 + len(_GARMENT_GROUPS), dtype=np.int32),
        product_group_names=tuple(g for g, _ in _PRODUCT_GROUPS),
        product_type_names=type_names,
        product_type_nos=type_nos,
        group_of_type=group_of_type,
        colour_names=tuple(c for c, _, _ in _COLOURS),
        colour_codes=np.array([1 + 2 * i for i in range(len(_COLOURS))], dtype=np.int32),
        master_of_colour=np.array([master_pos[m] for _, m, _ in _COLOURS], dtype=np.int16),
        value_of_colour=np.array([value_pos[v] for _, _, v in _COLOURS], dtype=np.int16),
        colour_master_names=_COLOUR_MASTERS,
        colour_master_ids=np.array(
            [-1 if m == "Undefined" else i + 1 for i, m in enumerate(_COLOUR_MASTERS)]
        ),
        colour_value_names=_COLOUR_VALUES,
        colour_value_ids=np.array([-1 if v == "Unknown" else i + 1 for i, v in enumerate(_COLOUR_VALUES)]),
        graphical_names=_GRAPHICAL,
        graphical_nos=np.array(
            [-1 if g == "Unknown" else 1030001 + i for i, g in enumerate(_GRAPHICAL)], dtype=np.int32
        ),
        style_names=STYLES,
    )
