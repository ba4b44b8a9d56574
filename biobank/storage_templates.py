"""Container templates: a whole freezer, tank or cabinet with its racks and boxes in one go."""

from __future__ import annotations

from dataclasses import dataclass, field

from biobank.models.storage import FillOrder, PositionScheme
from biobank.models.vocab import ContainerKind, StorageTemperature


@dataclass(frozen=True)
class Level:
    """*count* containers of *kind* named ``{name} 1…n``; a grid when rows and cols are set."""

    kind: ContainerKind
    name: str
    count: int = 1
    rows: int | None = None
    cols: int | None = None
    scheme: PositionScheme = PositionScheme.LETTER_NUMBER
    fill: FillOrder = FillOrder.ROW_MAJOR
    children: tuple[Level, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ContainerTemplate:
    title: str
    temperature: StorageTemperature | None
    root: Level

    def capacity(self) -> int:
        def walk(level: Level) -> int:
            own = (level.rows or 0) * (level.cols or 0)
            return level.count * (own + sum(walk(c) for c in level.children))

        return walk(self.root)


BOX_9X9 = Level(ContainerKind.BOX, "Box", 13, 9, 9)

TEMPLATES: dict[str, ContainerTemplate] = {
    "upright-freezer-80": ContainerTemplate(
        "−80 °C upright freezer: 5 shelves × 4 racks × 13 boxes of 9 × 9",
        StorageTemperature.MINUS_60_85,
        Level(
            ContainerKind.FREEZER,
            "Freezer",
            children=(
                Level(
                    ContainerKind.SHELF,
                    "Shelf",
                    5,
                    children=(Level(ContainerKind.RACK, "Rack", 4, children=(BOX_9X9,)),),
                ),
            ),
        ),
    ),
    "ln2-tank": ContainerTemplate(
        "LN2 tank: 6 canisters × 12 boxes of 10 × 10",
        StorageTemperature.LN,
        Level(
            ContainerKind.LN2_TANK,
            "Tank",
            children=(
                Level(
                    ContainerKind.CANISTER,
                    "Canister",
                    6,
                    children=(Level(ContainerKind.BOX, "Box", 12, 10, 10),),
                ),
            ),
        ),
    ),
    "ffpe-cabinet": ContainerTemplate(
        "FFPE block cabinet: 20 drawers of 10 × 12 blocks numbered 1–120",
        StorageTemperature.RT,
        Level(
            ContainerKind.CABINET,
            "Cabinet",
            children=(
                # blocks are filed by number, column by column, as in a card index
                Level(
                    ContainerKind.DRAWER, "Drawer", 20, 10, 12, PositionScheme.NUMBER, FillOrder.COLUMN_MAJOR
                ),
            ),
        ),
    ),
    "box-9x9": ContainerTemplate("Box of 9 × 9 cryovials", None, Level(ContainerKind.BOX, "Box", 1, 9, 9)),
    "box-10x10": ContainerTemplate(
        "Box of 10 × 10 cryovials", None, Level(ContainerKind.BOX, "Box", 1, 10, 10)
    ),
    "bag": ContainerTemplate("Bag or bin without positions", None, Level(ContainerKind.BAG, "Bag")),
}
