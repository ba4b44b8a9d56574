"""Storage containers and positions."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from biobank.auth import check_site
from biobank.db import db
from biobank.errors import Conflict, InvalidInput, NotFound
from biobank.models import PositionHold, PositionHoldKind, Specimen, StorageContainer
from biobank.models.storage import FillOrder, PositionScheme, position_name
from biobank.models.users import Actor
from biobank.models.vocab import ContainerKind, CustodyEventType, StorageTemperature
from biobank.services.common import apply_changes, ensure_unique, get_visible, visible
from biobank.services.custody import record_custody_events
from biobank.storage_templates import TEMPLATES, Level

#: which kinds of container may hold which (None = top level, directly at a site)
ALLOWED_PARENTS: dict[ContainerKind, tuple[ContainerKind | None, ...]] = {
    ContainerKind.FREEZER: (None,),
    ContainerKind.REFRIGERATOR: (None,),
    ContainerKind.LN2_TANK: (None,),
    ContainerKind.CABINET: (None,),
    ContainerKind.SHELF: (ContainerKind.FREEZER, ContainerKind.REFRIGERATOR, ContainerKind.CABINET),
    ContainerKind.RACK: (ContainerKind.FREEZER, ContainerKind.REFRIGERATOR, ContainerKind.SHELF),
    ContainerKind.CANISTER: (ContainerKind.LN2_TANK,),
    ContainerKind.DRAWER: (ContainerKind.CABINET,),
    ContainerKind.BOX: (
        ContainerKind.RACK,
        ContainerKind.SHELF,
        ContainerKind.CANISTER,
        ContainerKind.FREEZER,
        ContainerKind.REFRIGERATOR,
        ContainerKind.DRAWER,
    ),
    ContainerKind.BAG: (
        ContainerKind.RACK,
        ContainerKind.SHELF,
        ContainerKind.FREEZER,
        ContainerKind.REFRIGERATOR,
        ContainerKind.CABINET,
        ContainerKind.DRAWER,
        ContainerKind.CANISTER,
    ),
}
#: kinds that hold specimens directly
SPECIMEN_HOLDERS = (ContainerKind.BOX, ContainerKind.BAG, ContainerKind.DRAWER, ContainerKind.CANISTER)


def list_containers(
    *,
    actor: Actor,
    parent_id: int | None = None,
    site_id: int | None = None,
    kind: ContainerKind | None = None,
    top_level: bool = False,
) -> sa.Select:
    stmt = visible(sa.select(StorageContainer), StorageContainer, actor)
    if parent_id is not None:
        stmt = stmt.where(StorageContainer.parent_id == parent_id)
    elif top_level:
        stmt = stmt.where(StorageContainer.parent_id.is_(None))
    if site_id is not None:
        stmt = stmt.where(StorageContainer.site_id == site_id)
    if kind is not None:
        stmt = stmt.where(StorageContainer.kind == kind)
    return stmt


def create_container(
    *,
    actor: Actor,
    kind: ContainerKind,
    name: str,
    site_id: int | None = None,
    parent_id: int | None = None,
    barcode: str | None = None,
    n_rows: int | None = None,
    n_cols: int | None = None,
    temperature: StorageTemperature | None = None,
    position_scheme: PositionScheme | None = None,
    fill_order: FillOrder | None = None,
) -> StorageContainer:
    """Create a container at a site or inside another container of the same site (a grid
    is named and filled as the defaults say unless *position_scheme* and *fill_order* say
    otherwise)."""
    parent = None
    if parent_id is not None:
        parent = get_visible(StorageContainer, parent_id, actor, field="parent_id")
        if site_id is not None and site_id != parent.site_id:
            raise InvalidInput("a container must be at its parent's site", field="site_id")
        site_id = parent.site_id
    if site_id is None:
        raise InvalidInput("give site_id for a top-level container", field="site_id")
    check_site(actor, site_id)
    parent_kind = parent.kind if parent else None
    if parent_kind not in ALLOWED_PARENTS[kind]:
        where = parent_kind.value if parent_kind else "the top level of a site"
        allowed = ", ".join(k.value if k else "top level" for k in ALLOWED_PARENTS[kind])
        raise InvalidInput(
            f"a {kind.value} cannot be placed in {where} (allowed: {allowed})",
            field="parent_id" if parent else "kind",
        )
    if barcode:
        ensure_unique(StorageContainer, StorageContainer.barcode, barcode, field="barcode")
    naming = {"position_scheme": position_scheme, "fill_order": fill_order}
    container = StorageContainer(
        site_id=site_id,
        parent=parent,
        kind=kind,
        name=name,
        barcode=barcode,
        n_rows=n_rows,
        n_cols=n_cols,
        temperature=temperature,
        **{k: v for k, v in naming.items() if v is not None},  # else the model's defaults
    )
    db.session.add(container)
    db.session.flush()
    return container


def update_container(
    container: StorageContainer, changes: dict[str, Any], *, actor: Actor
) -> StorageContainer:
    """Rename a container or change its temperature or grid (a grid may not shrink below
    an occupied position)."""
    rows = changes.get("n_rows", container.n_rows)
    cols = changes.get("n_cols", container.n_cols)
    if ("n_rows" in changes or "n_cols" in changes) and container.has_grid:
        outside = db.session.scalar(
            sa.select(sa.func.count(Specimen.id)).where(
                Specimen.container_id == container.id,
                sa.or_(Specimen.pos_row > (rows or 0), Specimen.pos_col > (cols or 0)),
            )
        )
        if outside:
            raise Conflict(f"{outside} specimens sit outside the new grid", field="n_rows")
    apply_changes(container, changes)
    db.session.flush()
    return container


def check_position(container: StorageContainer, row: int | None, col: int | None) -> None:
    """Validate a position inside *container* (the unique constraint still decides races)."""
    if container.kind not in SPECIMEN_HOLDERS:
        raise InvalidInput(
            f"a {container.kind.value} does not hold specimens directly; "
            "choose a box, bag, drawer or canister",
            field="container_id",
        )
    if container.has_grid:
        if row is None or col is None:
            raise InvalidInput(f"{container.name} is a grid: give pos_row and pos_col", field="pos_row")
        if not 1 <= row <= container.n_rows:  # type: ignore[operator]
            raise InvalidInput(
                f"row {row} is outside {container.name} (rows 1–{container.n_rows})", field="pos_row"
            )
        if not 1 <= col <= container.n_cols:  # type: ignore[operator]
            raise InvalidInput(
                f"column {col} is outside {container.name} (columns 1–{container.n_cols})", field="pos_col"
            )
    elif row is not None or col is not None:
        raise InvalidInput(f"{container.name} has no grid: leave pos_row and pos_col empty", field="pos_row")


@functools.cache
def _holder_statement() -> sa.Select:
    """The hold on a position and the specimen in it, in one round trip (built once: scans
    pass here all day)."""
    container, row, col = sa.bindparam("container"), sa.bindparam("row"), sa.bindparam("col")
    hold_id = (
        sa.select(PositionHold.id)
        .where(
            PositionHold.container_id == container, PositionHold.pos_row == row, PositionHold.pos_col == col
        )
        .limit(1)
        .scalar_subquery()
    )
    occupant_id = (
        sa.select(Specimen.id)
        .where(Specimen.container_id == container, Specimen.pos_row == row, Specimen.pos_col == col)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(hold_id, occupant_id)


def ensure_free(
    container: StorageContainer, row: int | None, col: int | None, specimen: Specimen | None, *, field: str
) -> None:
    """Refuse a position another specimen holds, or one that is reserved or blocked (the
    unique constraint still decides races; this names what is in the way)."""
    if row is None or col is None:
        return
    place = {"container": container.id, "row": row, "col": col}
    hold, taken = db.session.connection().execute(_holder_statement(), place).one()
    if hold is not None:
        found = db.session.get(PositionHold, hold)
        why = f": {found.reason}" if found.reason else ""
        raise Conflict(
            f"position {container.position_label(row, col)} of {container.name} is {found.kind.value}{why}",
            field=field,
        )
    if taken is not None and (specimen is None or taken != specimen.id):
        raise Conflict(
            f"position {container.position_label(row, col)} of {container.name} "
            f"holds {db.session.get(Specimen, taken).barcode}",
            field=field,
        )


@functools.cache
def _path_statement() -> sa.Select:
    """The statement of :func:`containers_with_paths`, built once: building a recursive CTE
    costs more than running it (it is on the path of every scan)."""
    up = _walk_up(StorageContainer.id.in_(sa.bindparam("ids", expanding=True)))
    return sa.select(StorageContainer).where(StorageContainer.id.in_(sa.select(up.c.id)))


def _walk_up(start: Any, *columns: Any) -> Any:
    """The containers *start* selects and every container above them, as a recursive CTE of
    their id, parent id, *columns* and depth (0 for those *start* selects)."""
    c = StorageContainer
    selected = (c.id, c.parent_id, *columns)
    up = sa.select(*selected, sa.literal(0).label("depth")).where(start).cte("up", recursive=True)
    return up.union_all(sa.select(*selected, (up.c.depth + 1).label("depth")).where(c.id == up.c.parent_id))


#: the columns of a container that name a place
PLACE_COLUMNS = ("name", "position_scheme", "fill_order", "n_rows", "n_cols")


def place_path(start: Any) -> Any:
    """The containers *start* selects and every container above them, as a recursive CTE of
    the ``PLACE_COLUMNS`` and ``depth``: what :func:`place_names` takes, top first."""
    return _walk_up(start, *(getattr(StorageContainer, name) for name in PLACE_COLUMNS))


def place_names(path: Sequence[Any], row: int | None, col: int | None) -> tuple[str | None, str | None]:
    """(position label, location text) of a position, as a specimen's ``position_label`` and
    ``location_text`` give them, from the rows of :func:`place_path` for its container,
    top first (none: the specimen is nowhere)."""
    if not path:
        return None, None
    box = path[-1]
    label = None
    if row is not None and col is not None:
        label = position_name(box.position_scheme, box.fill_order, box.n_rows, box.n_cols, row, col)
    text = " › ".join(node.name for node in path)
    return label, f"{text} › {label}" if label else text


def containers_with_paths(container_ids: set[int]) -> dict[int, StorageContainer]:
    """Containers and every container above them, in one query, linked so that walking up
    a path (``container.path()``, a specimen's ``location_text``) issues no more."""
    if not container_ids:
        return {}
    found = {c.id: c for c in db.session.scalars(_path_statement(), {"ids": sorted(container_ids)})}
    # Linked as loaded values (not changes): the chain keeps them alive, since the session
    # itself holds loaded objects only weakly.
    for node in found.values():
        if node.parent_id is not None and node.parent_id in found:
            set_committed_value(node, "parent", found[node.parent_id])
    return found


def container_with_path(container_id: int) -> StorageContainer | None:
    """A container and every container above it, in one query (see
    :func:`containers_with_paths`)."""
    return containers_with_paths({container_id}).get(container_id)


def with_locations(specimens: list[Specimen]) -> list[Specimen]:
    """*specimens* with their containers and the containers above them loaded in one query:
    a list showing each tube's location needs no query per row."""
    found = containers_with_paths({s.container_id for s in specimens if s.container_id is not None})
    for specimen in specimens:
        if specimen.container_id in found:
            set_committed_value(specimen, "container", found[specimen.container_id])
    return specimens


def occupancy(container: StorageContainer) -> dict[tuple[int, int], Specimen]:
    """Specimens in a grid container by (row, column)."""
    rows = db.session.scalars(sa.select(Specimen).where(Specimen.container_id == container.id))
    return {(s.pos_row, s.pos_col): s for s in rows if s.pos_row is not None}


def loose_specimens(container: StorageContainer) -> list[Specimen]:
    """Specimens in a container without positions (a bag, a bin), oldest first."""
    return list(
        db.session.scalars(
            sa.select(Specimen).where(Specimen.container_id == container.id).order_by(Specimen.id)
        )
    )


def utilisation(container: StorageContainer) -> tuple[int, int | None]:
    """(occupied, capacity) of a container holding specimens directly."""
    used = db.session.scalar(
        sa.select(sa.func.count(Specimen.id)).where(Specimen.container_id == container.id)
    )
    return used or 0, container.capacity


def create_from_template(
    template_name: str, *, actor: Actor, name: str, site_id: int | None = None, parent_id: int | None = None
) -> StorageContainer:
    """Create a container and everything inside it from a template, in one flush."""
    template = TEMPLATES.get(template_name)
    if template is None:
        raise InvalidInput(
            f"unknown container template {template_name!r} (known: {', '.join(sorted(TEMPLATES))})",
            field="template",
        )
    if not name.strip():
        raise InvalidInput("give the new storage unit a name", field="name")
    root = create_container(
        actor=actor,
        site_id=site_id,
        parent_id=parent_id,
        kind=template.root.kind,
        name=name,
        n_rows=template.root.rows,
        n_cols=template.root.cols,
        temperature=template.temperature,
        position_scheme=template.root.scheme,
        fill_order=template.root.fill,
    )

    def build(parent: StorageContainer, levels: tuple[Level, ...]) -> None:
        for level in levels:
            for n in range(1, level.count + 1):
                child = StorageContainer(
                    site_id=parent.site_id,
                    parent=parent,
                    kind=level.kind,
                    name=f"{level.name} {n}",
                    n_rows=level.rows,
                    n_cols=level.cols,
                    position_scheme=level.scheme,
                    fill_order=level.fill,
                )
                db.session.add(child)
                build(child, level.children)

    build(root, template.root.children)
    db.session.flush()
    return root


def templates_fitting(container: StorageContainer | None) -> dict[str, Any]:
    """The container templates whose top can go inside *container* (``None``: at the top
    level of a site), by name."""
    kind = container.kind if container is not None else None
    return {name: t for name, t in TEMPLATES.items() if kind in ALLOWED_PARENTS[t.root.kind]}


def _boxes_with_free(
    actor: Actor, temperature: StorageTemperature | None, site_id: int | None
) -> tuple[sa.Select, Any]:
    """Grid boxes the actor sees (at *temperature*, at *site_id*) with their free positions
    as a correlated count, evaluated box by box: a search that stops at the first box that
    fits does not count every specimen in the biobank."""
    p1, p2, p3 = (aliased(StorageContainer) for _ in range(3))
    box = StorageContainer
    used = sa.select(sa.func.count()).where(Specimen.container_id == box.id).correlate(box).scalar_subquery()
    held = (
        sa.select(sa.func.count()).where(PositionHold.container_id == box.id).correlate(box).scalar_subquery()
    )
    free = box.n_rows * box.n_cols - used - held
    stmt = sa.select(box, free.label("free")).where(box.n_rows.is_not(None), box.kind.in_(SPECIMEN_HOLDERS))
    if temperature is not None:
        stmt = (
            stmt.outerjoin(p1, p1.id == box.parent_id)
            .outerjoin(p2, p2.id == p1.parent_id)
            .outerjoin(p3, p3.id == p2.parent_id)
            .where(
                sa.func.coalesce(box.temperature, p1.temperature, p2.temperature, p3.temperature)
                == temperature
            )
        )
    if site_id is not None:
        check_site(actor, site_id)
        stmt = stmt.where(box.site_id == site_id)
    return visible(stmt, StorageContainer, actor), free


def boxes_with_room(
    *, actor: Actor, site_id: int, temperature: StorageTemperature | None = None, limit: int = 50
) -> list[tuple[StorageContainer, int]]:
    """Boxes of a site (at a temperature) that have a free position, with how many, in
    storage order: the boxes a technician may choose instead of the suggested one."""
    stmt, free = _boxes_with_free(actor, temperature, site_id)
    return [
        (box, n)
        for box, n in db.session.execute(stmt.where(free > 0).order_by(StorageContainer.id).limit(limit))
    ]


def find_free_space(
    *, actor: Actor, count: int, temperature: StorageTemperature | None = None, site_id: int | None = None
) -> list[dict[str, Any]]:
    """*count* free positions close together: in the first box, in storage order, that has
    room for all of them (boxes fill one after another, as a fill order asks), else spread
    over as few boxes as possible.

    Returns ``[{"container": box, "positions": [(row, col), ...]}, ...]``.
    """
    stmt, free = _boxes_with_free(actor, temperature, site_id)
    box = StorageContainer
    whole = db.session.execute(stmt.where(free >= count).order_by(box.id).limit(1)).first()
    if whole is not None:
        return [{"container": whole[0], "positions": free_positions(whole[0], count)}]
    found, needed = [], count
    for candidate, n_free in db.session.execute(stmt.where(free > 0).order_by(free.desc(), box.id)):
        take = min(n_free, needed)
        found.append({"container": candidate, "positions": free_positions(candidate, take)})
        needed -= take
        if needed == 0:
            return found
    raise Conflict(f"only {count - needed} free positions match (asked for {count})", field="count")


def suggest_space(
    *, actor: Actor, count: int, site_id: int, temperature: StorageTemperature | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], list[tuple[StorageContainer, int]]]:
    """What :func:`find_free_space` suggests and what :func:`boxes_with_room` lists, from one
    walk over the boxes when it can: the first box with room for all *count* in storage
    order is also the first such box among those with any room. Raises like
    :func:`find_free_space` when nothing fits."""
    room = boxes_with_room(actor=actor, site_id=site_id, temperature=temperature, limit=limit)
    fit = next((box for box, n in room if n >= count), None)
    if fit is not None:
        return [{"container": fit, "positions": free_positions(fit, count)}], room
    return find_free_space(actor=actor, count=count, temperature=temperature, site_id=site_id), room


def hold_position(
    container: StorageContainer,
    row: int,
    col: int,
    *,
    kind: PositionHoldKind,
    actor: Actor,
    reason: str | None = None,
) -> PositionHold:
    """Reserve or block a free position so nothing is put there."""
    check_site(actor, container.site_id, field="container_id")
    check_position(container, row, col)
    ensure_free(container, row, col, None, field="pos_row")
    hold = PositionHold(
        container=container, pos_row=row, pos_col=col, kind=kind, reason=reason, created_by=actor.username
    )
    db.session.add(hold)
    db.session.flush()
    return hold


def release_hold(hold: PositionHold, *, actor: Actor) -> None:
    check_site(actor, hold.container.site_id, field="container_id")
    db.session.delete(hold)
    db.session.flush()


def _subtree_ids(container: StorageContainer) -> list[int]:
    tree = (
        sa.select(StorageContainer.id)
        .where(StorageContainer.id == container.id)
        .cte("subtree", recursive=True)
    )
    tree = tree.union_all(sa.select(StorageContainer.id).where(StorageContainer.parent_id == tree.c.id))
    return list(db.session.scalars(sa.select(tree.c.id)))


def move_container(container: StorageContainer, *, parent_id: int, actor: Actor) -> int:
    """Put a box or rack somewhere else; every specimen inside gets a custody event with
    its old and new location. Returns how many specimens moved with it."""
    check_site(actor, container.site_id, field="container_id")
    parent = get_visible(StorageContainer, parent_id, actor, field="parent_id")
    if parent.site_id != container.site_id:
        raise InvalidInput("the new place is at another site: ship the specimens instead", field="parent_id")
    if parent.kind not in ALLOWED_PARENTS[container.kind]:
        raise InvalidInput(
            f"a {container.kind.value} cannot be placed in a {parent.kind.value}", field="parent_id"
        )
    inside = _subtree_ids(container)
    if parent.id in inside:
        raise InvalidInput("a container cannot be moved into itself", field="parent_id")
    specimens = list(
        db.session.scalars(sa.select(Specimen).where(Specimen.container_id.in_(inside)).order_by(Specimen.id))
    )
    before = {s.id: s.location_text for s in specimens}
    container.parent = parent
    db.session.flush()
    record_custody_events(
        (
            (
                specimen,
                CustodyEventType.MOVED,
                {
                    "from_location": before[specimen.id],
                    "to_location": specimen.location_text,
                    "details": {"moved_with": container.name},
                },
            )
            for specimen in specimens
        ),
        actor=actor,
    )
    return len(specimens)


def list_holds(container: StorageContainer) -> list[PositionHold]:
    return list(
        db.session.scalars(
            sa.select(PositionHold)
            .where(PositionHold.container_id == container.id)
            .order_by(PositionHold.pos_row, PositionHold.pos_col)
        )
    )


def get_hold(container_id: int, hold_id: int) -> PositionHold:
    hold = db.session.get(PositionHold, hold_id)
    if hold is None or hold.container_id != container_id:
        raise NotFound(f"no hold {hold_id} on container {container_id}")
    return hold


def evacuation_plan(container: StorageContainer, *, actor: Actor) -> dict[str, Any]:
    """Where everything inside a failing container can go: free positions of the same
    temperature elsewhere at the site (holds respected), each box's tubes kept together
    where one box has room. Raises ``Conflict`` when there is not enough room."""
    check_site(actor, container.site_id, field="container_id")
    inside = set(_subtree_ids(container))
    specimens = list(
        db.session.scalars(
            sa.select(Specimen)
            .where(Specimen.container_id.in_(inside))
            .order_by(Specimen.container_id, Specimen.pos_row, Specimen.pos_col)
        )
    )
    temperature = container.effective_temperature()
    moves: list[dict[str, Any]] = []
    candidates = (
        c
        for c in db.session.scalars(
            sa.select(StorageContainer)
            .where(
                StorageContainer.site_id == container.site_id,
                StorageContainer.n_rows.is_not(None),
                StorageContainer.kind.in_(SPECIMEN_HOLDERS),
                StorageContainer.id.not_in(inside),
            )
            .order_by(StorageContainer.id)
        )
        if c.effective_temperature() == temperature
    )
    # Boxes are opened one at a time, as the tubes need them: a plan for one freezer does not
    # read the free positions of every box at the site.
    box: StorageContainer | None = None
    free: list[tuple[int, int]] = []
    for specimen in specimens:
        while not free:
            box = next(candidates, None)
            if box is None:
                raise Conflict(
                    f"{len(specimens) - len(moves)} of {len(specimens)} specimens have no free "
                    f"position at {temperature.value if temperature else 'this'} temperature "
                    "elsewhere at this site",
                    field="container_id",
                )
            free = free_positions(box)
        row, col = free.pop(0)
        moves.append(
            {
                "specimen_id": specimen.id,
                "barcode": specimen.barcode,
                "from": specimen.location_text,
                "container_id": box.id,
                "pos_row": row,
                "pos_col": col,
                "to": f"{' › '.join(c.name for c in box.path())} › {box.position_label(row, col)}",
            }
        )
    digest = hashlib.sha256(json.dumps(moves, sort_keys=True).encode()).hexdigest()
    return {
        "container_id": container.id,
        "temperature": temperature.value if temperature else None,
        "count": len(moves),
        "plan_sha256": digest,
        "moves": moves,
    }


def evacuate(container: StorageContainer, *, plan_sha256: str, actor: Actor) -> dict[str, Any]:
    """Carry out the reviewed plan in one transaction, with a custody event per specimen.

    The plan is recomputed; if anything changed since it was reviewed, nothing moves."""
    plan = evacuation_plan(container, actor=actor)
    if plan["plan_sha256"] != plan_sha256:
        raise Conflict("storage changed since the plan was made: review the new plan", field="plan_sha256")
    specimens = {
        s.id: s
        for s in db.session.scalars(
            sa.select(Specimen).where(Specimen.id.in_([m["specimen_id"] for m in plan["moves"]]))
        )
    }
    for specimen in specimens.values():
        specimen.container, specimen.pos_row, specimen.pos_col = None, None, None
    db.session.flush()
    for move in plan["moves"]:
        specimen = specimens[move["specimen_id"]]
        specimen.container_id, specimen.pos_row, specimen.pos_col = (
            move["container_id"],
            move["pos_row"],
            move["pos_col"],
        )
    db.session.flush()
    record_custody_events(
        (
            (
                specimens[move["specimen_id"]],
                CustodyEventType.MOVED,
                {
                    "from_location": move["from"],
                    "to_location": move["to"],
                    "details": {"evacuation_of": container.name},
                },
            )
            for move in plan["moves"]
        ),
        actor=actor,
    )
    for specimen in specimens.values():  # the container objects behind the new ids
        db.session.expire(specimen, ["container"])
    return plan


def subtree_usage(container_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(occupied, capacity) of all grid positions under each container.

    The containers below each one come from a recursive CTE (thousands at most); the tubes
    are counted per container and added up here. Many containers (a site's whole storage)
    are counted in one pass over the container index of the specimens, a few by looking
    each up: either way the specimen table itself is never read."""
    if not container_ids:
        return {}
    tree = (
        sa.select(StorageContainer.id.label("root"), StorageContainer.id.label("node"))
        .where(StorageContainer.id.in_(container_ids))
        .cte("tree", recursive=True)
    )
    tree = tree.union_all(
        sa.select(tree.c.root, StorageContainer.id).where(StorageContainer.parent_id == tree.c.node)
    )
    nodes = db.session.execute(
        sa.select(tree.c.root, tree.c.node, StorageContainer.n_rows * StorageContainer.n_cols).join(
            StorageContainer, StorageContainer.id == tree.c.node
        )
    ).all()
    count = sa.select(Specimen.container_id, sa.func.count()).group_by(Specimen.container_id)
    wanted = {node for _root, node, _size in nodes}
    if len(wanted) <= 2000:  # a freezer: look its boxes up; a site: one pass over the index
        count = count.where(Specimen.container_id.in_(sorted(wanted)))
    else:
        count = count.where(Specimen.container_id.is_not(None))
    held = {cid: n for cid, n in db.session.execute(count) if cid in wanted}
    usage = {cid: [0, 0] for cid in container_ids}
    for root, node, size in nodes:
        usage[root][0] += held.get(node, 0)
        usage[root][1] += size or 0
    return {cid: (used, capacity) for cid, (used, capacity) in usage.items()}


def free_positions(container: StorageContainer, count: int | None = None) -> list[tuple[int, int]]:
    """The first *count* free positions (all of them when ``None``) of a grid container in
    fill order (row by row or column by column); occupied, reserved and blocked positions
    are skipped."""
    if not container.has_grid:
        raise InvalidInput(f"{container.name} has no grid", field="container_id")
    taken = {
        tuple(row)
        for row in db.session.execute(
            sa.select(Specimen.pos_row, Specimen.pos_col).where(Specimen.container_id == container.id)
        )
    }
    taken |= {
        tuple(row)
        for row in db.session.execute(
            sa.select(PositionHold.pos_row, PositionHold.pos_col).where(
                PositionHold.container_id == container.id
            )
        )
    }
    free = [pos for pos in container.positions_in_fill_order() if pos not in taken]
    if count is None:
        return free
    if len(free) < count:
        raise Conflict(
            f"{container.name} has {len(free)} free positions; {count} are needed", field="container_id"
        )
    return free[:count]
