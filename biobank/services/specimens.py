"""Specimens: registration, changes, placement and lineage."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from biobank import gs1, signals
from biobank.auth import MANAGERS, check_site, has_role
from biobank.db import db, utcnow
from biobank.errors import Conflict, InvalidInput, InvalidState, NotFound, PermissionDenied
from biobank.models import (
    AuditRecord,
    Case,
    CollectionEvent,
    CustodyEvent,
    Lesion,
    Participant,
    Site,
    Specimen,
    StorageContainer,
)
from biobank.models.users import Actor
from biobank.models.vocab import (
    BodySite,
    CustodyEventType,
    Lineage,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    SpecimenStatus,
    display_name,
)
from biobank.services.barcodes import issue_barcode
from biobank.services.common import apply_changes, ensure_unique, get_by, get_visible, visible
from biobank.services.custody import (
    list_custody_events,
    lock_specimens,
    record_custody_event,
    restore_state,
    state_snapshot,
)
from biobank.services.storage import (
    check_position,
    container_with_path,
    ensure_free,
    free_positions,
)
from biobank.sprec import ProcessingStep, derive_sprec, sprec_text
from biobank.units import format_quantity

TERMINAL = (SpecimenStatus.DISTRIBUTED, SpecimenStatus.CONSUMED, SpecimenStatus.DISPOSED)


def list_specimens(*, actor: Actor, **filters: Any) -> sa.Select:
    """Specimens at the actor's sites, filtered by the obvious fields."""
    stmt = visible(sa.select(Specimen), Specimen, actor)
    for name in (
        "participant_id",
        "collection_event_id",
        "lesion_id",
        "parent_id",
        "container_id",
        "site_id",
    ):
        if filters.get(name) is not None:
            stmt = stmt.where(getattr(Specimen, name) == filters[name])
    for name in ("material_type", "status", "lineage", "pathology_status"):
        values = filters.get(name)
        if values:
            stmt = stmt.where(getattr(Specimen, name).in_(values))
    if filters.get("barcode"):
        stmt = stmt.where(Specimen.barcode == filters["barcode"])
    if filters.get("q"):
        text = filters["q"].strip()
        # A union of three index range scans: an OR across the columns makes planners walk
        # the primary key and filter, which is slow when the matches are scattered.
        matches = sa.union(
            sa.select(Specimen.id).where(_prefix(Specimen.barcode, text)),
            sa.select(Specimen.id).where(_prefix(Specimen.label, text)),
            sa.select(Specimen.id)
            .join(Participant, Participant.id == Specimen.participant_id)
            .where(_prefix(Participant.code, text)),
        )
        stmt = stmt.where(Specimen.id.in_(matches))
    if filters.get("disease_group"):
        stmt = stmt.where(
            Specimen.participant_id.in_(
                sa.select(Case.participant_id).where(Case.disease_group.in_(filters["disease_group"]))
            )
        )
    return stmt


#: the columns of a specimen list exported as CSV
CSV_COLUMNS = (
    "barcode",
    "participant",
    "material",
    "lineage",
    "status",
    "quantity",
    "unit",
    "site",
    "location",
    "collected_at",
)


def specimen_rows(stmt: sa.Select) -> Iterator[str]:
    """*stmt*'s specimens as CSV lines (a header first), read in batches: a list of any
    length streams in flat memory."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(CSV_COLUMNS)
    for specimen in db.session.scalars(stmt.order_by(Specimen.id).execution_options(yield_per=1000)):
        out.writerow(
            (
                specimen.barcode,
                specimen.participant.code,
                display_name(specimen.material_type),
                display_name(specimen.lineage),
                display_name(specimen.status),
                "" if specimen.quantity is None else specimen.quantity,
                specimen.unit.value if specimen.unit else "",
                specimen.site.code,
                specimen.location_text or "",
                specimen.collected_at.isoformat() if specimen.collected_at else "",
            )
        )
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _prefix(column: Any, text: str) -> Any:
    """Prefix match as a range, so the column's B-tree index serves it (LIKE is
    case-insensitive on SQLite and collation-bound on PostgreSQL, and then scans)."""
    return sa.and_(column >= text, column < text + "\uffff")


def _place(
    specimen: Specimen, container_id: int | None, row: int | None, col: int | None, *, actor: Actor
) -> StorageContainer | None:
    if container_id is None:
        if row is not None or col is not None:
            raise InvalidInput("a position needs a container_id", field="container_id")
        return None
    container = get_visible(StorageContainer, container_id, actor, field="container_id")
    check_position(container, row, col)
    if container.site_id != specimen.site_id:
        raise InvalidInput("the container is at another site than the specimen", field="container_id")
    ensure_free(container, row, col, specimen, field="pos_row")
    return container


class _FromParent:
    """The default of a specimen's visit and lesion: its parent's (none for a primary)."""

    def __repr__(self) -> str:
        return "FROM_PARENT"


FROM_PARENT: Any = _FromParent()


def _child_lineage(
    parent: Specimen, participant: Participant, lineage: Lineage | None, material_type: MaterialType
) -> Lineage:
    """The lineage of a new child of *parent* (an aliquot unless said otherwise), refused
    for another participant's or a finished parent, or an aliquot of another material."""
    if parent.participant_id != participant.id:
        raise InvalidInput(f"parent {parent.barcode} belongs to another participant", field="parent_id")
    if parent.status in TERMINAL:
        raise InvalidState(f"parent {parent.barcode} is {parent.status.value}", field="parent_id")
    lineage = lineage or Lineage.ALIQUOT
    if lineage is Lineage.PRIMARY:
        raise InvalidInput("a specimen with a parent is an aliquot or a derivative", field="lineage")
    if lineage is Lineage.ALIQUOT and material_type != parent.material_type:
        raise InvalidInput(
            f"an aliquot has its parent's material type ({parent.material_type.value}); "
            "use lineage 'derivative' for a new material",
            field="material_type",
        )
    return lineage


def _check_visit_and_lesion(
    participant: Participant, collection_event_id: int | None, lesion_id: int | None, *, actor: Actor
) -> CollectionEvent | None:
    """The visit a new specimen comes from (if any), refused with its lesion when either
    belongs to another participant."""
    event = None
    if collection_event_id is not None:
        event = get_visible(CollectionEvent, collection_event_id, actor, field="collection_event_id")
        if event.participant_id != participant.id:
            raise InvalidInput(
                "the collection event belongs to another participant", field="collection_event_id"
            )
    if lesion_id is not None:
        lesion = db.session.get(Lesion, lesion_id)
        if lesion is None or lesion.case.participant_id != participant.id:
            raise InvalidInput("the lesion belongs to another participant", field="lesion_id")
    return event


def register_specimen(
    *,
    actor: Actor,
    participant_id: int,
    material_type: MaterialType,
    barcode: str | None = None,
    manufacturer_barcode: str | None = None,
    label: str | None = None,
    site_id: int | None = None,
    parent_id: int | None = None,
    lineage: Lineage | None = None,
    collection_event_id: int | None = FROM_PARENT,
    lesion_id: int | None = FROM_PARENT,
    status: SpecimenStatus = SpecimenStatus.COLLECTED,
    pathology_status: PathologyStatus = PathologyStatus.NOT_SPECIFIED,
    anatomical_site: BodySite | None = None,
    quantity: Decimal | None = None,
    initial_quantity: Decimal | None = None,
    unit: QuantityUnit | None = None,
    concentration_ng_ul: Decimal | None = None,
    freeze_thaw_count: int = 0,
    sprec_code: str | None = None,
    received_at: dt.datetime | None = None,
    processed_at: dt.datetime | None = None,
    frozen_at: dt.datetime | None = None,
    container_id: int | None = None,
    pos_row: int | None = None,
    pos_col: int | None = None,
) -> Specimen:
    """Register a specimen (primary, aliquot or derivative), optionally placed in storage.

    A barcode left out is issued (site + material + number). With a parent the specimen is
    an aliquot unless *lineage* says derivative, and takes the parent's visit and lesion
    unless they are given (``None`` included). The holding site defaults to the
    participant's, the initial quantity to *quantity*. Records a custody event for the
    collection and, when placed, for the storage.
    """
    participant = get_visible(Participant, participant_id, actor, field="participant_id")
    site_id = site_id or participant.site_id
    check_site(actor, site_id)
    if barcode:
        ensure_unique(Specimen, Specimen.barcode, barcode, field="barcode")
    else:
        barcode = issue_barcode(db.session.get(Site, site_id), material_type)
    if manufacturer_barcode:
        ensure_unique(
            Specimen, Specimen.manufacturer_barcode, manufacturer_barcode, field="manufacturer_barcode"
        )

    parent = None
    if parent_id is not None:
        parent = get_visible(Specimen, parent_id, actor, field="parent_id")
        lineage = _child_lineage(parent, participant, lineage, material_type)
        if collection_event_id is FROM_PARENT:
            collection_event_id = parent.collection_event_id
        if lesion_id is FROM_PARENT:
            lesion_id = parent.lesion_id
    elif (lineage or Lineage.PRIMARY) is not Lineage.PRIMARY:
        raise InvalidInput("an aliquot or derivative needs a parent_id", field="parent_id")
    collection_event_id = None if collection_event_id is FROM_PARENT else collection_event_id
    lesion_id = None if lesion_id is FROM_PARENT else lesion_id
    event = _check_visit_and_lesion(participant, collection_event_id, lesion_id, actor=actor)

    if quantity is not None and unit is None:
        raise InvalidInput("a quantity needs a unit", field="unit")
    specimen = Specimen(
        participant=participant,
        site_id=site_id,
        parent=parent,
        barcode=barcode,
        manufacturer_barcode=manufacturer_barcode,
        label=label,
        lineage=lineage or Lineage.PRIMARY,
        material_type=material_type,
        collection_event_id=collection_event_id,
        lesion_id=lesion_id,
        status=status,
        pathology_status=pathology_status,
        anatomical_site=anatomical_site,
        quantity=quantity,
        initial_quantity=quantity if initial_quantity is None else initial_quantity,
        unit=unit,
        concentration_ng_ul=concentration_ng_ul,
        freeze_thaw_count=freeze_thaw_count,
        sprec_code=sprec_code,
        received_at=received_at,
        processed_at=processed_at,
        frozen_at=frozen_at,
    )
    # Added at once (it is already in its parent's children), but inserted only when
    # complete: one INSERT with its place, one audit record.
    db.session.add(specimen)
    with db.session.no_autoflush:
        container = _place(specimen, container_id, pos_row, pos_col, actor=actor)
        if container is not None:
            specimen.container = container
            specimen.pos_row, specimen.pos_col = pos_row, pos_col
            if specimen.status in (SpecimenStatus.COLLECTED, SpecimenStatus.RECEIVED):
                specimen.status = SpecimenStatus.IN_STORAGE
    db.session.flush()

    kind = {
        Lineage.PRIMARY: CustodyEventType.COLLECTED,
        Lineage.ALIQUOT: CustodyEventType.ALIQUOTED,
        Lineage.DERIVATIVE: CustodyEventType.DERIVED,
    }[specimen.lineage]
    details = {"parent": parent.barcode} if parent else {}
    record_custody_event(
        specimen,
        kind,
        actor=actor,
        occurred_at=event.collected_at if event and not parent else None,
        details=details,
    )
    if container is not None:
        record_custody_event(
            specimen, CustodyEventType.STORED, actor=actor, to_location=specimen.location_text
        )
    signals.specimens_created.send(actor, specimens=[specimen])
    return specimen


def expected_tubes(*, actor: Actor, limit: int) -> list[dict[str, str]]:
    """The tubes expected at *actor*'s sites (the latest *limit*): barcode, material,
    participant code and the day each was registered."""
    rows = db.session.execute(
        visible(
            sa.select(Specimen.barcode, Specimen.material_type, Specimen.created_at, Participant.code),
            Specimen,
            actor,
        )
        .join(Participant, Participant.id == Specimen.participant_id)
        .where(Specimen.status == SpecimenStatus.EXPECTED)
        .order_by(Specimen.created_at.desc(), Specimen.id)
        .limit(limit)
    ).all()
    return [
        {
            "barcode": r.barcode,
            "material": r.material_type.value,
            "participant": r.code,
            "registered": r.created_at.date().isoformat(),
        }
        for r in rows
    ]


def update_specimen(specimen: Specimen, changes: dict[str, Any], *, actor: Actor) -> Specimen:
    """Change a specimen's descriptive fields or move it to another position.

    A move records a custody event from the old to the new location.
    """
    if specimen.status in TERMINAL:
        raise InvalidState(
            f"{specimen.barcode} is {specimen.status.value} and can no longer be changed",
            current_state=specimen.status.value,
        )
    moving = any(k in changes for k in ("container_id", "pos_row", "pos_col"))
    if moving:
        container_id = changes.pop("container_id", specimen.container_id)
        row = changes.pop("pos_row", specimen.pos_row)
        col = changes.pop("pos_col", specimen.pos_col)
        before = specimen.location_text
        container = _place(specimen, container_id, row, col, actor=actor)
        if (container_id, row, col) != (specimen.container_id, specimen.pos_row, specimen.pos_col):
            specimen.container = container
            specimen.pos_row, specimen.pos_col = row, col
            db.session.flush()
            record_custody_event(
                specimen,
                CustodyEventType.MOVED if before else CustodyEventType.STORED,
                actor=actor,
                from_location=before,
                to_location=specimen.location_text,
            )
            if container is not None and specimen.status in (
                SpecimenStatus.COLLECTED,
                SpecimenStatus.RECEIVED,
            ):
                specimen.status = SpecimenStatus.IN_STORAGE
    if "barcode" in changes:
        ensure_unique(Specimen, Specimen.barcode, changes["barcode"], field="barcode", exclude_id=specimen.id)
    if changes.get("quantity") is not None and specimen.unit is None and not changes.get("unit"):
        raise InvalidInput("a quantity needs a unit", field="unit")
    apply_changes(specimen, changes)
    db.session.flush()
    return specimen


def get_specimen_by_barcode(barcode: str, *, actor: Actor) -> Specimen:
    return get_by(Specimen, Specimen.barcode, barcode, actor)


def lineage_of(specimen: Specimen) -> tuple[list[Specimen], list[tuple[int, Specimen]]]:
    """Ancestors (root first) and descendants with their depth, by recursive CTE."""
    ancestors: list[Specimen] = []
    node = specimen.parent
    while node is not None:
        ancestors.append(node)
        node = node.parent
    tree = (
        sa.select(Specimen.id, sa.literal(1).label("depth"))
        .where(Specimen.parent_id == specimen.id)
        .cte("descendants", recursive=True)
    )
    tree = tree.union_all(
        sa.select(Specimen.id, (tree.c.depth + 1).label("depth")).where(Specimen.parent_id == tree.c.id)
    )
    # All descendants share the participant: load it once through the identity map instead
    # of joining participant, study and site into every one of hundreds of rows.
    rows = db.session.execute(
        sa.select(Specimen, tree.c.depth)
        .join(tree, tree.c.id == Specimen.id)
        .options(sa.orm.lazyload(Specimen.participant))
        .order_by(tree.c.depth, Specimen.id)
    ).all()
    return ancestors[::-1], [(depth, s) for s, depth in rows]


def overview(*, actor: Actor) -> dict[str, Any]:
    """What the dashboard counts among the rows *actor* may see: specimens by material,
    status and site (one pass over ``ix_specimens_site_material_status``, not the table),
    cases by disease group, participants. Counts are exact; suppression for researchers is
    the caller's."""
    stmt = visible(
        sa.select(Specimen.site_id, Specimen.material_type, Specimen.status, sa.func.count()), Specimen, actor
    )
    material: Counter[Any] = Counter()
    status: Counter[Any] = Counter()
    site: Counter[Any] = Counter()
    for site_id, kind, state, n in db.session.execute(
        stmt.group_by(Specimen.site_id, Specimen.material_type, Specimen.status)
    ):
        material[kind] += n
        status[state] += n
        site[site_id] += n
    names = dict(db.session.execute(sa.select(Site.id, Site.name)).all())
    cases = visible(sa.select(Case.disease_group, sa.func.count(Case.id)), Case, actor).group_by(
        Case.disease_group
    )
    by_disease = sorted(db.session.execute(cases).all(), key=lambda r: r[0].value)
    return {
        "total": sum(material.values()),
        "participants": db.session.scalar(
            visible(sa.select(sa.func.count(Participant.id)), Participant, actor)
        )
        or 0,
        "by_material": sorted(material.items(), key=lambda kv: kv[0].value),
        "by_status": sorted(status.items(), key=lambda kv: kv[0].value),
        "by_site": sorted(((names.get(k, k), n) for k, n in site.items()), key=lambda kv: str(kv[0])),
        "by_disease": [tuple(r) for r in by_disease],
    }


#: what each material may be processed into (derivatives; aliquots keep the material)
DERIVABLE: dict[MaterialType, frozenset[MaterialType]] = {
    MaterialType.WHOLE_BLOOD: frozenset(
        {
            MaterialType.PLASMA,
            MaterialType.SERUM,
            MaterialType.BUFFY_COAT,
            MaterialType.PERIPHERAL_BLOOD_CELLS,
            MaterialType.DNA,
            MaterialType.RNA,
        }
    ),
    MaterialType.PLASMA: frozenset(
        {MaterialType.DNA, MaterialType.RNA, MaterialType.MICRO_RNA}
    ),  # cell-free nucleic acids
    MaterialType.SERUM: frozenset({MaterialType.DNA, MaterialType.RNA, MaterialType.MICRO_RNA}),
    MaterialType.BUFFY_COAT: frozenset({MaterialType.DNA, MaterialType.RNA}),
    MaterialType.PERIPHERAL_BLOOD_CELLS: frozenset(
        {MaterialType.DNA, MaterialType.RNA, MaterialType.CELL_LINES}
    ),
    MaterialType.TISSUE_FROZEN: frozenset(
        {
            MaterialType.DNA,
            MaterialType.RNA,
            MaterialType.MICRO_RNA,
            MaterialType.TISSUE_STAINED,
            MaterialType.CELL_LINES,
        }
    ),
    # FFPE block → sections and stained slides, and nucleic acids extracted from them
    MaterialType.TISSUE_PARAFFIN_EMBEDDED: frozenset(
        {MaterialType.TISSUE_STAINED, MaterialType.DNA, MaterialType.RNA}
    ),
    MaterialType.RNA: frozenset({MaterialType.CDNA, MaterialType.MICRO_RNA}),
    MaterialType.URINE: frozenset({MaterialType.DNA, MaterialType.RNA}),
    MaterialType.FECES: frozenset({MaterialType.DNA, MaterialType.RNA}),
    MaterialType.SALIVA: frozenset({MaterialType.DNA, MaterialType.RNA}),
}


def create_aliquots(
    parent: Specimen,
    *,
    actor: Actor,
    count: int,
    quantity: Any,
    material_type: Any = None,
    container_id: int | None = None,
    print_request: dict[str, Any] | None = None,
    unit: Any = None,
    concentration_ng_ul: Any = None,
    quantity_used: Any = None,
    processing: dict[str, Any] | None = None,
    placements: list[dict[str, int]] | None = None,
) -> list[Specimen]:
    """Split *parent* into *count* aliquots (or derivatives of another material) of
    *quantity* each, placed in fill order in *container_id*, or each at its own position
    (*placements*: one ``{"container_id", "pos_row", "pos_col"}`` per new tube, as chosen on
    a box grid; each checked like any placement).

    Aliquots are in the parent's unit and the parent's remaining quantity goes down by what
    was taken; asking for more than it holds is refused. Derivatives (DNA from buffy coat,
    plasma from whole blood, a slide from an FFPE block…) have their own unit, take
    *quantity_used* from the parent and record how they were made (*processing*). One
    custody event on the parent names every child.
    """
    if parent.status in TERMINAL:
        raise InvalidState(f"{parent.barcode} is {parent.status.value}", field="parent")
    lineage = Lineage.ALIQUOT if material_type in (None, parent.material_type) else Lineage.DERIVATIVE
    material = material_type or parent.material_type
    total = Decimal(quantity) * count
    if lineage is Lineage.DERIVATIVE:
        allowed = DERIVABLE.get(parent.material_type, frozenset())
        if material not in allowed:
            names = ", ".join(sorted(m.value for m in allowed)) or "nothing"
            raise InvalidInput(
                f"{parent.material_type.value} cannot be processed into "
                f"{material.value} (it can give: {names})",
                field="material_type",
            )
        if quantity_used is not None:
            if parent.quantity is None or Decimal(quantity_used) > parent.quantity:
                held = (
                    format_quantity(parent.quantity, parent.unit)
                    if parent.quantity is not None
                    else "nothing"
                )
                used = format_quantity(quantity_used, parent.unit)
                raise InvalidInput(
                    f"{parent.barcode} holds {held}; {used} cannot be used", field="quantity_used"
                )
            parent.quantity -= Decimal(quantity_used)
    elif (unit is not None and unit is not parent.unit) or quantity_used is not None:
        raise InvalidInput(
            "aliquots are in the parent's unit and take their own quantity: "
            "unit and quantity_used are for derivatives",
            field="unit",
        )
    if lineage is Lineage.ALIQUOT:
        if parent.quantity is None or parent.unit is None:
            raise InvalidInput(f"{parent.barcode} has no recorded quantity to split", field="quantity")
        if total > parent.quantity:
            raise InvalidInput(
                f"{count} × {format_quantity(quantity, parent.unit)} = "
                f"{format_quantity(total, parent.unit)}, but {parent.barcode} holds "
                f"{format_quantity(parent.quantity, parent.unit)}",
                field="quantity",
            )
    if processing and processing.get("kit_barcode"):
        processing = processing | {"kit": _scanned_kit(processing)}
    container = None
    if placements is not None:
        if container_id is not None:
            raise InvalidInput("give a box to fill or the positions, not both", field="placements")
        if len(placements) != count:
            raise InvalidInput(
                f"{len(placements)} positions chosen for {count} new tubes", field="placements"
            )
        if len({(p["container_id"], p["pos_row"], p["pos_col"]) for p in placements}) < count:
            raise InvalidInput("the same position is chosen twice", field="placements")
    if container_id is not None:
        container = get_visible(StorageContainer, container_id, actor, field="container_id")
        positions = free_positions(container, count)
    children = []
    for i in range(count):
        fields: dict[str, Any] = {
            "participant_id": parent.participant_id,
            "parent_id": parent.id,
            "lineage": lineage,
            "material_type": material,
            "quantity": Decimal(quantity),
            "initial_quantity": Decimal(quantity),
            "unit": unit or parent.unit,
            "pathology_status": parent.pathology_status,
            "concentration_ng_ul": concentration_ng_ul,
            "processed_at": (processing or {}).get("started_at"),
            "anatomical_site": parent.anatomical_site,
            "site_id": parent.site_id,
            "sprec_code": parent.sprec_code if lineage is Lineage.ALIQUOT else None,
            "barcode": None,
            "status": SpecimenStatus.RECEIVED,
        }
        if container is not None:
            fields.update(container_id=container.id, pos_row=positions[i][0], pos_col=positions[i][1])
        elif placements is not None:
            fields.update(
                container_id=placements[i]["container_id"],
                pos_row=placements[i]["pos_row"],
                pos_col=placements[i]["pos_col"],
            )
        children.append(register_specimen(actor=actor, **fields))
    if lineage is Lineage.ALIQUOT:
        parent.quantity -= total
    record_custody_event(
        parent,
        CustodyEventType.ALIQUOTED if lineage is Lineage.ALIQUOT else CustodyEventType.DERIVED,
        actor=actor,
        details={
            "children": [c.barcode for c in children],
            "each": str(quantity),
            "unit": (unit or parent.unit).value if (unit or parent.unit) else None,
        }
        | ({"used": str(quantity_used)} if quantity_used is not None else {})
        | (
            {
                "processing": {
                    k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in processing.items()
                }
            }
            if processing
            else {}
        ),
    )
    signals.aliquots_created.send(actor, parent=parent, children=children, print_request=print_request)
    return children


def children_among(parent: Specimen, barcodes: list[str], *, actor: Actor) -> list[Specimen]:
    """Those of *barcodes* that were made from *parent* and that *actor* sees, oldest first."""
    return list(
        db.session.scalars(
            visible(
                sa.select(Specimen).where(Specimen.barcode.in_(barcodes), Specimen.parent_id == parent.id),
                Specimen,
                actor,
            ).order_by(Specimen.id)
        )
    )


def _scanned_kit(processing: dict[str, Any]) -> dict[str, Any]:
    """The GTIN, lot and expiry of the kit whose label was scanned for a processing step;
    an expired kit, or a lot other than the one typed, is refused."""
    started = processing.get("started_at")
    on = started.date() if started else utcnow().date()
    try:
        kit = gs1.read_kit(processing["kit_barcode"], on=on)
    except gs1.GS1Error as error:
        raise InvalidInput(f"kit label: {error}", field="processing.kit_barcode") from None
    typed = processing.get("kit_lot")
    if typed and kit.lot and typed != kit.lot:
        raise InvalidInput(f"the kit label's lot is {kit.lot}, not {typed}", field="processing.kit_lot")
    return kit.as_dict()


def sprec_of(specimen: Specimen) -> dict[str, Any] | None:
    """The SPREC code derived from *specimen*'s recorded history, element by element, next to
    the recorded code (``None`` for materials SPREC does not code)."""
    chain = [specimen]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    chain.reverse()  # primary first
    primary = chain[0]
    steps = []
    for parent, child in itertools.pairwise(chain):
        details: dict[str, Any] = {}
        for event in db.session.scalars(
            sa.select(CustodyEvent).where(
                CustodyEvent.specimen_id == parent.id,
                CustodyEvent.event_type.in_([CustodyEventType.DERIVED, CustodyEventType.ALIQUOTED]),
            )
        ):
            if child.barcode in event.details.get("children", []):
                details = event.details.get("processing") or {}
                break
        started = details.get("started_at")
        steps.append(
            ProcessingStep(
                material=child.material_type.value,
                started_at=dt.datetime.fromisoformat(started) if started else child.processed_at,
                method=details.get("method"),
                temperature=details.get("temperature"),
            )
        )
    event = primary.collection_event
    elements = derive_sprec(
        material=specimen.material_type.value,
        collected_at=event.collected_at if event else None,
        procedure=event.procedure.value if event else None,
        steps=steps,
        frozen_at=specimen.frozen_at,
        recorded=specimen.sprec_code,
    )
    if elements is None:
        return None
    return {
        "recorded": specimen.sprec_code,
        "computed": sprec_text(elements),
        "elements": elements,
        "differs": [e.name for e in elements if e.differs],
    }


def correct_custody_event(specimen: Specimen, event_id: int, *, actor: Actor, reason: str) -> CustodyEvent:
    """Record a correcting event for an event recorded by mistake (a wrong tube scanned):
    the specimen gets back the status, quantity, site and position it had before that
    event. The ledger is never edited: the mistaken event stays, and the correction names
    it. Only the latest event that is not yet corrected can be corrected (newest first), and
    only one that kept the specimen's state before it (scans do). Flushes."""
    if not has_role(actor, MANAGERS):
        raise PermissionDenied("only a biobank manager may correct the chain of custody")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("say why the event is corrected", field="reason")
    lock_specimens([specimen])
    events = list_custody_events(specimen)
    target = next((e for e in events if e.id == event_id), None)
    if target is None:
        raise NotFound(f"{specimen.barcode} has no custody event {event_id}", field="event_id")
    if target.event_type is CustodyEventType.CORRECTED:
        raise InvalidState("a correction cannot itself be corrected", field="event_id")
    corrected = {
        e.details.get("corrects_event_id") for e in events if e.event_type is CustodyEventType.CORRECTED
    }
    if target.id in corrected:
        raise InvalidState(f"event {target.seq} is already corrected", field="event_id")
    later = [
        e.seq
        for e in events
        if e.seq > target.seq and e.event_type is not CustodyEventType.CORRECTED and e.id not in corrected
    ]
    if later:
        raise InvalidState(
            f"events after it ({', '.join(map(str, later))}) are still in force: correct "
            "them first, newest first",
            field="event_id",
        )
    before = target.details.get("before")
    if not isinstance(before, dict):
        raise InvalidState(
            f"event {target.seq} ({target.event_type.value}) did not keep the specimen's "
            "state before it, so it cannot be undone automatically",
            field="event_id",
        )

    now = state_snapshot(specimen)
    from_location = specimen.location_text
    with db.session.no_autoflush:
        restore_state(specimen, before)
        if specimen.container_id is not None:
            container = container_with_path(specimen.container_id)
            if container is None:
                raise Conflict("the box it was in no longer exists", field="event_id")
            specimen.container = container
            try:
                ensure_free(container, specimen.pos_row, specimen.pos_col, specimen, field="event_id")
            except Conflict as error:
                raise Conflict(f"cannot put it back: {error.message}", field="event_id") from None
        else:
            specimen.container = None
    return record_custody_event(
        specimen,
        CustodyEventType.CORRECTED,
        actor=actor,
        locked=True,
        from_location=from_location,
        to_location=specimen.location_text,
        details={
            "corrects_event_id": target.id,
            "corrects_seq": target.seq,
            "corrected_type": target.event_type.value,
            "reason": reason,
            "before": now,
            "restored": before,
        },
    )


def audit_query(specimen: Specimen) -> sa.Select:
    """Every recorded change of *specimen*'s row, oldest first."""
    return (
        sa.select(AuditRecord)
        .where(AuditRecord.entity == "specimens", AuditRecord.entity_id == str(specimen.id))
        .order_by(AuditRecord.id)
    )
