"""The demo's feeds: a product catalog in JSON or XML, and its bulk export, from DynamoDB."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from xml.etree import ElementTree

from pynamodb.attributes import JSONAttribute

from offload.feeds import Feed, GenerationRequest, Parameter
from offload.table import TableModel, register_model

CATEGORIES = ("audio", "books", "cameras", "garden", "kitchen", "outdoor", "shoes", "toys")
_ADJECTIVES = ("compact", "classic", "deluxe", "eco", "pro", "rugged", "smart", "ultra")
_NOUNS = ("bundle", "edition", "kit", "model", "pack", "series", "set", "unit")
_COLOURS = ("black", "blue", "green", "grey", "orange", "red", "white", "yellow")
# What the local stack and `offload-demo seed` write.
DEMO_PRODUCTS = 2000


@register_model  # bound to the table with Offload's own models
class Product(TableModel):
    """A catalog item, the catalog feeds' source data, in Offload's table."""

    class Meta(TableModel.Meta):
        pass

    PARTITION = "CATALOG#products"

    data = JSONAttribute()


def product_records(count: int, *, seed: int = 7) -> Iterator[dict]:
    """Deterministic demo products: the same `count` and `seed` give the same items."""
    rng = random.Random(seed)
    for number in range(1, count + 1):
        category = rng.choice(CATEGORIES)
        name = f"{rng.choice(_ADJECTIVES).title()} {category.title()} {rng.choice(_NOUNS).title()}"
        sku = f"SKU-{number:06d}"
        yield {
            "sku": sku,
            "name": f"{name} {number}",
            "category": category,
            "description": (
                f"{name} in {rng.choice(_COLOURS)}, built for everyday use. "
                f"Ships in {rng.randint(1, 9)} business days with a "
                f"{rng.choice((1, 2, 3, 5))}-year warranty and free returns within 30 days."
            ),
            "price": {"amount": f"{rng.randint(199, 99_999) / 100:.2f}", "currency": "EUR"},
            "stock": rng.randint(0, 500),
            "rating": round(rng.uniform(1, 5), 1),
            "colours": sorted(rng.sample(_COLOURS, k=rng.randint(1, 3))),
            "image": f"https://images.example.com/products/{sku.lower()}.jpg",
            "url": f"https://shop.example.com/p/{sku.lower()}",
        }


def seed_products(records: Iterable[dict]) -> int:
    """Write products (idempotently: same sku, same item) and return how many."""
    written = 0
    with Product.batch_write() as batch:
        for record in records:
            batch.save(Product(Product.PARTITION, record["sku"], data=record))
            written += 1
    return written


def _products(category: str | None) -> Iterator[dict]:
    # Sort order is the table's (by sku), which keeps the output deterministic.
    for item in Product.query(Product.PARTITION, consistent_read=True):
        if category is None or item.data.get("category") == category:
            yield item.data


def render_json(products: Iterable[dict]) -> bytes:
    document = {"feed": "catalog", "products": list(products)}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def render_xml(products: Iterable[dict]) -> bytes:
    root = ElementTree.Element("catalog")
    for product in products:
        element = ElementTree.SubElement(root, "product", sku=product["sku"])
        for name in ("name", "category", "description", "stock", "rating", "image", "url"):
            ElementTree.SubElement(element, name).text = str(product[name])
        price = product["price"]
        ElementTree.SubElement(element, "price", currency=price["currency"]).text = price["amount"]
        colours = ElementTree.SubElement(element, "colours")
        for colour in product["colours"]:
            ElementTree.SubElement(colours, "colour").text = colour
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def generate(request: GenerationRequest) -> bytes:
    """Build the catalog for the requested format and category."""
    products = _products(request.params.get("category"))
    if request.format == "xml":
        return render_xml(products)
    return render_json(products)


CATALOG = Feed(
    name="catalog",
    description="Product catalog, optionally filtered by category.",
    formats={"json": "application/json", "xml": "application/xml"},
    parameters=(
        Parameter(
            "category",
            pattern=re.compile("|".join(CATEGORIES)),
            description="one of " + ", ".join(CATEGORIES),
        ),
    ),
    max_age_seconds=3600,
    generation_timeout_seconds=10.0,
    generate=generate,
)


def generate_export(request: GenerationRequest) -> bytes:
    """Every product, one JSON document a line: the bulk format for loading elsewhere."""
    lines = (json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p in _products(None))
    return "".join(f"{line}\n" for line in lines).encode()


EXPORT = Feed(
    name="catalog-export",
    description="Every product as JSON Lines, for bulk loads; generated in the background.",
    formats={"jsonl": "application/x-ndjson"},
    shared=True,
    max_age_seconds=24 * 3600,
    # A full export may take minutes, longer than API Gateway waits: it runs in the
    # generator function, and requests answer 202 until it is stored.
    generation_timeout_seconds=300.0,
    generate=generate_export,
)
