"""Generate seeded sample search data in the Home Depot relevance format.

The real Home Depot judgments may not be redistributed, so the demo's default input comes from
here. Each row pairs a search query with a product title and a relevance label in [1, 3], which is
the mean of three simulated raters (rarely four). Queries come from a vocabulary of
home-improvement categories, brands and attributes:

- Relevant queries name the product's category and some of its attributes, sometimes misspelled
  or abbreviated.
- Partial queries name the category with a wrong attribute, or name a related category.
- Irrelevant queries come from an unrelated category.

Because queries are short combinations of a small vocabulary, each query string recurs across
several products, so nDCG per query has something to rank.

`product_uid` grows with the time a product entered the catalogue. Later products drift because
smart-home devices, solar gear and EV chargers appear part way through, and because the share of
irrelevant judgments (relevance < 2) rises. Over seeds 0 to 59 at 2,400 rows that share averages
14% in the first quarter, 19% in the last and 16% overall (the real data: 15% overall, 19% in
the last quarter, 15% in the first).

The output depends only on `n_rows` and `seed`, drawn from one `random.Random(seed)`, so no
global random state is read or changed.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

SAMPLE_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")

RELEVANCE_VALUES = (1.0, 1.25, 1.33, 1.5, 1.67, 1.75, 2.0, 2.25, 2.33, 2.5, 2.67, 2.75, 3.0)

FIRST_PRODUCT_UID = 100001


@dataclass(frozen=True)
class Category:
    """Product category with its title template, attribute values and query nouns."""

    key: str
    nouns: tuple[str, ...]  # query nouns, most common first
    template: str  # title template with {brand} and one field per slot
    brands: tuple[str, ...]
    slots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    related: tuple[str, ...] = ()  # keys of categories whose queries are partial matches
    since: float = 0.0  # fraction of the timeline before which no product of this category exists


def _category(key, nouns, template, brands, slots, related=(), since=0.0) -> Category:
    return Category(key, tuple(nouns), template, tuple(brands), slots, tuple(related), since)


_FINISHES = ("Chrome", "Brushed Nickel", "Matte Black", "Oil Rubbed Bronze", "Stainless Steel")
_FAUCET_BRANDS = ("Delta", "Moen", "Glacier Bay", "Pfister", "American Standard", "KOHLER")
_SERIES = ("Vero", "Arbor", "Harbor", "Weston", "Marlow", "Bristol")
_TOOL_BRANDS = ("DEWALT", "Milwaukee", "RYOBI", "Makita", "RIDGID")
_VOLTAGES = ("12-Volt", "18-Volt", "20-Volt MAX")
_FLOOR_BRANDS = ("LifeProof", "TrafficMaster", "Home Decorators Collection")
_WOOD_LOOKS = ("Oak", "Hickory", "Gray Ash", "Walnut", "Maple")
_LIGHT_BRANDS = (
    "Hampton Bay", "Progress Lighting", "Commercial Electric", "Home Decorators Collection",
)

CATEGORIES: tuple[Category, ...] = (
    _category("kitchen_faucet", ["kitchen faucet", "kitchen sink faucet", "pull down faucet"],
       "{brand} {series} Single-Handle Pull-Down Sprayer Kitchen Faucet in {finish}",
       _FAUCET_BRANDS, {"series": _SERIES, "finish": _FINISHES},
       ["bathroom_faucet", "kitchen_sink"]),
    _category("bathroom_faucet", ["bathroom faucet", "bathroom sink faucet", "lavatory faucet"],
       "{brand} {series} {spread} 2-Handle Bathroom Faucet in {finish}",
       _FAUCET_BRANDS, {"series": _SERIES, "finish": _FINISHES,
                        "spread": ("4 in. Centerset", "8 in. Widespread", "Single Hole")},
       ["kitchen_faucet", "shower_faucet"]),
    _category("shower_faucet", ["shower faucet", "shower trim kit", "shower valve"],
       "{brand} {series} 1-Handle Shower Faucet Trim Kit in {finish} (Valve Not Included)",
       _FAUCET_BRANDS, {"series": _SERIES, "finish": _FINISHES},
       ["shower_head", "bathroom_faucet"]),
    _category("shower_head", ["shower head", "rain shower head", "showerhead"],
       "{brand} {sprays}-Spray {size} Fixed Shower Head in {finish}",
       _FAUCET_BRANDS, {"sprays": ("1", "3", "5", "6"), "finish": _FINISHES,
                        "size": ("4 in.", "6 in.", "8 in.", "10 in.")},
       ["shower_faucet"]),
    _category("toilet", ["toilet", "elongated toilet", "toilet bowl"],
       "{brand} {series} {pieces}-Piece {gpf} GPF Single Flush {shape} Toilet in {color}",
       ("American Standard", "KOHLER", "Glacier Bay", "TOTO"),
       {"series": _SERIES, "pieces": ("1", "2"), "gpf": ("1.28", "1.6"),
        "shape": ("Elongated", "Round"), "color": ("White", "Biscuit")},
       ["bathroom_faucet"]),
    _category("kitchen_sink", ["kitchen sink", "sink", "double bowl sink"],
       "{brand} Drop-In {material} {size} {bowls} Kitchen Sink",
       ("KOHLER", "Glacier Bay", "Elkay", "Swanstone"),
       {"material": ("Stainless Steel", "Granite Composite", "Fireclay"),
        "size": ("25 in.", "30 in.", "33 in."), "bowls": ("Single Bowl", "Double Bowl")},
       ["kitchen_faucet"]),
    _category("cordless_drill", ["cordless drill", "drill driver", "power drill"],
       "{brand} {voltage} Lithium-Ion Cordless {chuck} Drill/Driver Kit",
       _TOOL_BRANDS, {"voltage": _VOLTAGES, "chuck": ("1/2 in.", "3/8 in.")},
       ["impact_driver", "drill_bits"]),
    _category("impact_driver", ["impact driver", "impact drill"],
       "{brand} {voltage} Lithium-Ion Cordless 1/4 in. Hex Impact Driver (Tool-Only)",
       _TOOL_BRANDS, {"voltage": _VOLTAGES}, ["cordless_drill"]),
    _category("drill_bits", ["drill bit set", "drill bits"],
       "{brand} {material} Drill Bit Set ({count}-Piece)",
       ("DEWALT", "Milwaukee", "Bosch", "Drill America"),
       {"material": ("Titanium", "Cobalt", "Black Oxide", "Carbide-Tipped Masonry"),
        "count": ("14", "21", "29", "100")}, ["cordless_drill"]),
    _category("interior_paint", ["interior paint", "wall paint", "paint and primer"],
       "{brand} {line} 1 gal. {color} {sheen} Interior Paint and Primer",
       ("BEHR", "Glidden", "PPG", "Valspar"),
       {"line": ("Premium Plus", "Ultra", "Marquee"),
        "color": ("Polar White", "Warm Gray", "Sandstone", "Navy Blue", "Sage Green"),
        "sheen": ("Flat", "Eggshell", "Satin", "Semi-Gloss")}, ["exterior_stain"]),
    _category("exterior_stain", ["deck stain", "wood stain", "exterior stain"],
       "{brand} 1 gal. {color} {opacity} Exterior Wood Stain",
       ("BEHR", "Olympic", "Thompson's WaterSeal", "Cabot"),
       {"color": ("Cedar", "Redwood", "Slate Gray", "Chestnut Brown"),
        "opacity": ("Transparent", "Semi-Transparent", "Solid Color")},
       ["interior_paint", "lumber"]),
    _category("lumber", ["lumber", "board", "stud"],
       "{dimension} x {length} {treatment} {wood} Lumber", ("",),
       {"dimension": ("2 in. x 4 in.", "2 in. x 6 in.", "4 in. x 4 in.", "1 in. x 6 in."),
        "length": ("8 ft.", "10 ft.", "12 ft."), "treatment": ("Pressure-Treated", "Kiln-Dried"),
        "wood": ("Pine", "Douglas Fir", "Cedar")}, ["plywood"]),
    _category("plywood", ["plywood", "plywood sheet"],
       "{thickness} x 4 ft. x 8 ft. {grade} {wood} Plywood", ("",),
       {"thickness": ("1/4 in.", "1/2 in.", "3/4 in."), "grade": ("BC", "Sanded", "CDX"),
        "wood": ("Pine", "Birch", "Oak")}, ["lumber"]),
    _category("ceiling_fan", ["ceiling fan", "ceiling fan with light"],
       "{brand} {series} {size} {place} {finish} Ceiling Fan with Light Kit",
       ("Hampton Bay", "Home Decorators Collection", "Hunter", "Minka Aire"),
       {"series": _SERIES, "size": ("44 in.", "52 in.", "60 in."),
        "place": ("Indoor", "Indoor/Outdoor", "LED Indoor"), "finish": _FINISHES},
       ["light_fixture", "bath_fan"]),
    _category("bath_fan", ["bathroom fan", "exhaust fan", "bath vent fan"],
       "{brand} {cfm} CFM Ceiling Mount {feature} Bathroom Exhaust Fan",
       ("Broan-NuTone", "Panasonic", "Delta Breez"),
       {"cfm": ("50", "80", "110"), "feature": ("Quiet", "with Light", "with Humidity Sensor")},
       ["ceiling_fan"]),
    _category("led_bulb", ["led bulb", "light bulb", "led light bulbs"],
       "{brand} {watts} Equivalent {shape} {tone} LED Light Bulb ({count}-Pack)",
       ("Philips", "Cree", "EcoSmart", "Feit Electric", "GE"),
       {"watts": ("40-Watt", "60-Watt", "100-Watt"), "shape": ("A19", "BR30", "PAR38"),
        "tone": ("Soft White", "Daylight", "Bright White"), "count": ("4", "6", "12")},
       ["light_fixture"]),
    _category("light_fixture", ["ceiling light", "flush mount light", "light fixture"],
       "{brand} {lights}-Light {finish} Flush Mount Ceiling Light", _LIGHT_BRANDS,
       {"lights": ("1", "2", "3"), "finish": _FINISHES}, ["led_bulb", "ceiling_fan"]),
    _category("vinyl_flooring", ["vinyl plank flooring", "vinyl flooring", "lvp flooring"],
       "{brand} {look} {width} x 47.6 in. Luxury Vinyl Plank Flooring ({area} sq. ft. / case)",
       _FLOOR_BRANDS, {"look": _WOOD_LOOKS, "width": ("6 in.", "7.5 in.", "8.7 in."),
                       "area": ("19.8", "23.6")}, ["laminate_flooring", "floor_tile"]),
    _category("laminate_flooring", ["laminate flooring", "laminate floor"],
       "{brand} {look} {thickness} Thick x {width} Wide Laminate Flooring",
       _FLOOR_BRANDS, {"look": _WOOD_LOOKS, "thickness": ("8 mm", "10 mm", "12 mm"),
                       "width": ("6 in.", "7.6 in.")}, ["vinyl_flooring"]),
    _category("floor_tile", ["floor tile", "ceramic tile", "porcelain tile"],
       "{brand} {color} {size} {material} Floor and Wall Tile",
       ("Daltile", "MSI", "Florida Tile", "TrafficMaster"),
       {"color": ("White", "Gray", "Beige", "Black"),
        "size": ("12 in. x 12 in.", "12 in. x 24 in.", "3 in. x 6 in."),
        "material": ("Ceramic", "Porcelain", "Glazed Porcelain")},
       ["grout", "vinyl_flooring"]),
    _category("grout", ["grout", "tile grout"],
       "{brand} {weight} {color} {kind} Grout", ("Custom Building Products", "TEC", "Mapei"),
       {"weight": ("10 lb.", "25 lb."), "color": ("White", "Gray", "Bone", "Charcoal"),
        "kind": ("Sanded", "Unsanded")}, ["floor_tile"]),
    _category("interior_door", ["interior door", "door slab", "bedroom door"],
       "{brand} {size} {panels}-Panel {core} {material} Interior Door Slab",
       ("Masonite", "JELD-WEN", "Steves & Sons"),
       {"size": ("30 in. x 80 in.", "32 in. x 80 in.", "36 in. x 80 in."),
        "panels": ("2", "3", "6"), "core": ("Hollow Core", "Solid Core"),
        "material": ("Primed Composite", "Pine", "Oak")}, ["exterior_door", "door_knob"]),
    _category("exterior_door", ["front door", "exterior door", "entry door"],
       "{brand} {size} {glass} {finish} Steel Prehung Front Door",
       ("Masonite", "JELD-WEN", "Steves & Sons"),
       {"size": ("32 in. x 80 in.", "36 in. x 80 in."),
        "glass": ("Half Lite", "Full Lite", "6-Panel"), "finish": ("Primed White", "Black")},
       ["interior_door", "door_knob"]),
    _category("door_knob", ["door knob", "door handle", "doorknob"],
       "{brand} {style} {finish} {function} Door Knob", ("Kwikset", "Schlage", "Defiant"),
       {"style": ("Tylo", "Ball", "Round"), "finish": _FINISHES,
        "function": ("Privacy Bed/Bath", "Passage Hall/Closet", "Keyed Entry")},
       ["interior_door", "exterior_door"]),
    _category("garden_hose", ["garden hose", "water hose", "hose"],
       "{brand} {diameter} Dia x {length} {grade} Garden Hose",
       ("Gilmour", "Flexzilla", "Swan", "Teknor Apex"),
       {"diameter": ("1/2 in.", "5/8 in.", "3/4 in."), "length": ("50 ft.", "75 ft.", "100 ft."),
        "grade": ("Heavy-Duty", "Medium-Duty", "Premium Rubber")}, ["hose_nozzle"]),
    _category("hose_nozzle", ["hose nozzle", "spray nozzle"],
       "{brand} {patterns}-Pattern {material} Hose Nozzle", ("Gilmour", "Melnor", "Orbit"),
       {"patterns": ("3", "7", "10"), "material": ("Metal", "Plastic", "Zinc")},
       ["garden_hose"]),
    _category("lawn_mower", ["lawn mower", "push mower", "mower"],
       "{brand} {deck} {power} Walk Behind Push Lawn Mower",
       ("Toro", "RYOBI", "Honda", "Craftsman"),
       {"deck": ("20 in.", "21 in.", "22 in."),
        "power": ("140cc Gas", "40-Volt Lithium-Ion Cordless", "Electric Corded")}),
    _category("electrical_wire", ["electrical wire", "romex wire", "copper wire"],
       "{brand} {length} {gauge} {kind} Solid Copper Electrical Wire",
       ("Southwire", "Cerrowire"),
       {"length": ("25 ft.", "50 ft.", "250 ft."), "gauge": ("14/2", "12/2", "10/3"),
        "kind": ("NM-B", "THHN", "UF-B")}, ["outlet"]),
    _category("outlet", ["outlet", "electrical outlet", "receptacle"],
       "{brand} {amps} {feature} Duplex Outlet, {color}", ("Leviton", "Eaton", "Legrand"),
       {"amps": ("15 Amp", "20 Amp"), "feature": ("Tamper-Resistant", "GFCI", "USB Charger"),
        "color": ("White", "Light Almond", "Ivory")}, ["electrical_wire", "smart_plug"]),
    _category("water_heater", ["water heater", "hot water heater"],
       "{brand} Performance {capacity} {warranty} {fuel} Tank Water Heater",
       ("Rheem", "A.O. Smith", "Bradford White"),
       {"capacity": ("40 gal.", "50 gal."), "warranty": ("6-Year", "9-Year", "12-Year"),
        "fuel": ("Electric", "Natural Gas", "Liquid Propane")}),
    # Categories below arrive part way through the timeline, so later increments drift.
    _category("smart_thermostat", ["smart thermostat", "wifi thermostat", "thermostat"],
       "{brand} {model} Wi-Fi Smart Thermostat in {finish}",
       ("Google Nest", "ecobee", "Honeywell Home", "Emerson Sensi"),
       {"model": ("Learning", "Premium", "Touch"), "finish": ("White", "Black", "Stainless Steel")},
       ["smart_plug", "video_doorbell"], since=0.25),
    _category("smart_plug", ["smart plug", "wifi plug", "smart outlet"],
       "{brand} {count}-Pack {amps} Wi-Fi Smart Plug with {feature}",
       ("Kasa", "Wyze", "Leviton", "Amazon Basics"),
       {"count": ("1", "2", "4"), "amps": ("10 Amp", "15 Amp"),
        "feature": ("Energy Monitoring", "Voice Control", "Scheduling")},
       ["outlet", "smart_thermostat"], since=0.25),
    _category("video_doorbell", ["video doorbell", "doorbell camera", "smart doorbell"],
       "{brand} {resolution} Wi-Fi Video Doorbell ({power})",
       ("Ring", "Google Nest", "Blink", "eufy"),
       {"resolution": ("1080p HD", "1536p HD", "2K"), "power": ("Battery", "Wired")},
       ["smart_thermostat"], since=0.4),
    _category("solar_panel", ["solar panel", "solar panel kit", "solar power"],
       "{brand} {watts} Monocrystalline Solar Panel {kit}",
       ("Renogy", "Grape Solar", "Jackery", "EcoFlow"),
       {"watts": ("100-Watt", "200-Watt", "400-Watt"),
        "kit": ("Starter Kit", "(12-Volt)", "with Charge Controller")},
       ["solar_light", "ev_charger"], since=0.5),
    _category("solar_light", ["solar light", "solar lights outdoor", "solar flood light"],
       "{brand} {lumens} Lumens {finish} Solar LED Motion Sensor Security Light",
       ("Hampton Bay", "Defiant", "Sunforce"),
       {"lumens": ("400", "800", "1500"), "finish": ("Black", "Bronze", "White")},
       ["solar_panel", "light_fixture"], since=0.5),
    _category("ev_charger", ["ev charger", "electric car charger", "level 2 charger"],
       "{brand} {amps} Level 2 240-Volt Electric Vehicle Charger with {cable} Cable",
       ("ChargePoint", "Grizzl-E", "Emporia", "JuiceBox"),
       {"amps": ("32 Amp", "40 Amp", "48 Amp"), "cable": ("18 ft.", "23 ft.", "25 ft.")},
       ["electrical_wire", "outlet"], since=0.7),
)

_BY_KEY = {category.key: category for category in CATEGORIES}

# Probability that one simulated rater gives 3, 2 or 1 to a row of each kind.
_RATER_PROBABILITIES = {
    "relevant": (0.76, 0.21, 0.03),
    "wrong_attribute": (0.36, 0.54, 0.10),
    "related_category": (0.30, 0.57, 0.13),
    "irrelevant": (0.08, 0.34, 0.58),
}
_LABEL_NOISE_RATE = 0.04  # share of rows whose raters judge as if the row were of a random kind
_FOUR_RATER_RATE = 0.01  # share of rows with four raters, which gives the quarter values
_MISSPELL_RATE = 0.07
_PARTIAL_SHARE = 0.38  # share of partial-match queries, constant over time

# Query text for unit spellings in titles, the title's own spelling first and most likely.
_UNIT_SPELLINGS = (
    (" in.", (" in.", " in", " inch")),
    (" ft.", (" ft.", " ft", " foot")),
    (" gal.", (" gal.", " gallon")),
    (" lb.", (" lb.", " lb")),
    ("-volt", ("-volt", "v", " volt")),
    ("-watt", ("-watt", " watt", "w")),
    (" amp", (" amp", "amp", "a")),
)
_SPELLING_WEIGHTS = (0.75, 0.17, 0.08)


@dataclass(frozen=True)
class _Product:
    uid: int
    category: Category
    brand: str
    attributes: dict[str, str]
    title: str


def _irrelevant_share(time: float) -> float:
    """Return the share of irrelevant queries at `time`, the catalogue position in [0, 1].

    The share is flat for the first half of the catalogue and then rises linearly.
    """
    return 0.095 + 0.08 * max(0.0, time - 0.5) / 0.5


def _choose_kind(time: float, rng: Random) -> str:
    irrelevant = _irrelevant_share(time)
    draw = rng.random()
    if draw < irrelevant:
        return "irrelevant"
    if draw < irrelevant + _PARTIAL_SHARE:
        return "partial"
    return "relevant"


def _available(time: float) -> list[Category]:
    return [category for category in CATEGORIES if category.since <= time]


def _make_product(uid: int, category: Category, rng: Random) -> _Product:
    brand = rng.choice(category.brands)
    attributes = {slot: rng.choice(values) for slot, values in category.slots.items()}
    # Splitting and joining removes the double space that an empty brand leaves.
    title = " ".join(category.template.format(brand=brand, **attributes).split())
    return _Product(uid, category, brand, attributes, title)


def _new_product(uid: int, time: float, rng: Random) -> _Product:
    """Draw a product of a category on sale at `time`, weighting newly arrived categories 1.5x."""
    categories = _available(time)
    weights = [1.5 if category.since > 0 else 1.0 for category in categories]
    category = rng.choices(categories, weights=weights)[0]
    return _make_product(uid, category, rng)


def _query_form(value: str, rng: Random) -> str:
    """Turn an attribute value from a title into the text a shopper types for it."""
    text = value.lower().replace("(", "").replace(")", "")
    dimensions = re.fullmatch(r"(\d+) in\. x (\d+) in\.", text)
    if dimensions and rng.random() < 0.5:
        return f"{dimensions.group(1)}x{dimensions.group(2)}"
    for title_spelling, spellings in _UNIT_SPELLINGS:
        if title_spelling in text:
            spelling = rng.choices(spellings, weights=_SPELLING_WEIGHTS[: len(spellings)])[0]
            text = text.replace(title_spelling, spelling)
    return text


def _misspell(text: str, rng: Random) -> str:
    """Drop, double or swap one letter inside the longest word of `text`."""
    words = text.split()
    index = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[index]
    if len(word) < 4:
        return text
    position = rng.randrange(1, len(word) - 1)
    edit = rng.choice(("drop", "double", "swap"))
    if edit == "drop":
        word = word[:position] + word[position + 1 :]
    elif edit == "double":
        word = word[:position] + word[position] + word[position:]
    else:
        word = word[: position - 1] + word[position] + word[position - 1] + word[position + 1 :]
    words[index] = word
    return " ".join(words)


def _noun(category: Category, rng: Random) -> str:
    weights = [len(category.nouns) - rank for rank in range(len(category.nouns))]
    return rng.choices(category.nouns, weights=weights)[0]


def _query_for(product: _Product, rng: Random, wrong_slot: str | None = None) -> str:
    """Build a query that matches `product`, except for a wrong value in `wrong_slot` if given."""
    slots = [slot for slot in product.attributes if slot != wrong_slot]
    n_matching = rng.choices((0, 1, 2), weights=(0.62, 0.33, 0.05))[0]
    chosen = rng.sample(slots, min(n_matching, len(slots)))
    values = [product.attributes[slot] for slot in chosen]
    if wrong_slot is not None:
        right_value = product.attributes[wrong_slot]
        options = [v for v in product.category.slots[wrong_slot] if v != right_value]
        values = [rng.choice(options)] + values[1:]

    parts = [_query_form(value, rng) for value in values]
    if product.brand and rng.random() < 0.06:
        parts.insert(0, product.brand.lower())
    # Shoppers who type attributes mostly pair them with the common noun.
    if parts and rng.random() < 0.7:
        noun = product.category.nouns[0]
    else:
        noun = _noun(product.category, rng)
    if rng.random() < _MISSPELL_RATE:
        noun = _misspell(noun, rng)
    return " ".join(parts + [noun])


def _partial_query(product: _Product, time: float, rng: Random) -> tuple[str, str]:
    """Return a partial-match query and its kind: a wrong attribute or a related category."""
    on_sale = {category.key for category in _available(time)}
    related = [key for key in product.category.related if key in on_sale]
    wrong_slots = [slot for slot, values in product.category.slots.items() if len(values) > 1]
    if related and (not wrong_slots or rng.random() < 0.45):
        neighbour = _make_product(product.uid, _BY_KEY[rng.choice(related)], rng)
        return _query_for(neighbour, rng), "related_category"
    return _query_for(product, rng, wrong_slot=rng.choice(wrong_slots)), "wrong_attribute"


def _irrelevant_query(product: _Product, time: float, rng: Random) -> str:
    excluded = {product.category.key, *product.category.related}
    unrelated = [category for category in _available(time) if category.key not in excluded]
    other = _make_product(product.uid, rng.choice(unrelated), rng)
    return _query_for(other, rng)


def _rate(kind: str, rng: Random) -> float:
    """Draw three (rarely four) rater scores and return their mean, rounded to 2 decimals."""
    if rng.random() < _LABEL_NOISE_RATE:
        kind = rng.choice(sorted(_RATER_PROBABILITIES))
    n_raters = 4 if rng.random() < _FOUR_RATER_RATE else 3
    scores = rng.choices((3, 2, 1), weights=_RATER_PROBABILITIES[kind], k=n_raters)
    return round(sum(scores) / n_raters, 2)


def _judge(product: _Product, time: float, rng: Random) -> tuple[str, float]:
    """Return one (search term, relevance) judgment for `product`."""
    kind = _choose_kind(time, rng)
    if kind == "relevant":
        query = _query_for(product, rng)
    elif kind == "partial":
        query, kind = _partial_query(product, time, rng)
    else:
        query = _irrelevant_query(product, time, rng)
    return query, _rate(kind, rng)


def generate_sample(n_rows: int = 2400, seed: int = 0) -> list[dict]:
    """Generate `n_rows` judgments in the Home Depot columns, sorted by `product_uid`.

    Each row is a dict with the keys of `SAMPLE_COLUMNS`: `id` (int, 1 to `n_rows`),
    `product_uid` (int, increasing with the time the product was added), `product_title` (str),
    `search_term` (str) and `relevance` (float, one of `RELEVANCE_VALUES`). A product has 1 to 3
    judgments with distinct search terms. The same `n_rows` and `seed` give the same rows.

    NOTE: Python promises a stable `random.random()` sequence per seed, but not stable
    `choice`, `choices` or `sample` results across Python versions, so a new interpreter may
    change the rows for a seed. Tests compare two runs in one interpreter.

    Raises:
        ValueError: if `n_rows` is not a positive int or `seed` is not an int.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive int, got {n_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")

    rng = Random(seed)
    rows: list[dict] = []
    uid = FIRST_PRODUCT_UID
    while len(rows) < n_rows:
        # The row position is the time axis, so drift follows product_uid order.
        time = len(rows) / n_rows
        product = _new_product(uid, time, rng)
        n_judgments = rng.choices((1, 2, 3), weights=(0.62, 0.25, 0.13))[0]
        seen: set[str] = set()
        for _ in range(min(n_judgments, n_rows - len(rows))):
            query, relevance = _judge(product, time, rng)
            if query in seen:
                continue
            seen.add(query)
            rows.append({"id": len(rows) + 1, "product_uid": product.uid,
                         "product_title": product.title, "search_term": query,
                         "relevance": relevance})
        uid += rng.randint(1, 3)
    return rows


def write_sample_csv(path, n_rows: int = 2400, seed: int = 0) -> Path:
    """Write `generate_sample(n_rows, seed)` to `path` as CSV and return the path.

    The format is that of the real Home Depot file: a header line, strings quoted, numbers bare,
    ISO-8859-1 encoding and `\\n` line ends. Missing parent folders are created. The file is
    written to a temporary name and renamed, so a failure leaves no partial file at `path`.

    Raises:
        ValueError: as `generate_sample` does, before anything is written.
    """
    rows = generate_sample(n_rows, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "x", encoding="iso-8859-1", newline="") as file:
            writer = csv.writer(file, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
            writer.writerow(SAMPLE_COLUMNS)
            for row in rows:
                relevance = row["relevance"]
                # The real file writes whole relevances as "3", not "3.0".
                relevance = int(relevance) if relevance.is_integer() else relevance
                writer.writerow([row["id"], row["product_uid"], row["product_title"],
                                 row["search_term"], relevance])
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
