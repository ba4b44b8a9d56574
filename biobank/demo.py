"""The demo biobank: a deterministic, realistic skin-disease biobank generated from a seed.

The same generator builds the small demo (~300 participants, ~3,000 specimens) and the large
benchmark databases (150,000 participants, 1,000,000 specimens). Rows are written with bulk
Core inserts in dependency order, each with its audit record and hash-chained custody events,
inside one transaction: a failed load leaves the database as it was.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from biobank import signals
from biobank.audit import plain_value
from biobank.barcodes import make_barcode
from biobank.db import db, refresh_statistics, transaction, utcnow
from biobank.demo_images import load_demo_images
from biobank.errors import Conflict
from biobank.models import (
    AuditRecord,
    Case,
    CollectionEvent,
    ConsentResponse,
    ConsentTier,
    CustodyEvent,
    Lesion,
    Participant,
    ParticipantPHI,
    Site,
    Specimen,
    StorageContainer,
    Study,
    User,
)
from biobank.models.users import Actor
from biobank.models.vocab import (
    AjccStage,
    AuditAction,
    BodySite,
    CollectionProcedure,
    ConsentDecision,
    ConsentScope,
    ContainerKind,
    CustodyEventType,
    DiseaseGroup,
    Laterality,
    Lineage,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    Role,
    Sex,
    SpecimenStatus,
    StorageTemperature,
)
from biobank.services.custody import chain_rows
from biobank.services.users import create_user, system_actor

#: (username, password, role) of the demo logins printed by `biobank serve --demo`
DEMO_USERS = [
    ("admin", "admin-demo-pw", Role.ADMIN),
    ("manager", "manager-demo-pw", Role.MANAGER),
    ("tech", "tech-demo-pw", Role.TECHNICIAN),
    ("researcher", "researcher-demo-pw", Role.RESEARCHER),
]

SITES = [
    ("CTR", "Central Dermatology Hospital Biobank", "Shanghai", True),
    ("NRT", "Northern Regional Hospital", "Beijing", False),
]

#: share of participants per disease group (melanoma first: a quarter of the collection)
DISEASE_MIX = [
    (DiseaseGroup.MELANOMA, 25),
    (DiseaseGroup.OTHER_SKIN_TUMOUR, 15),
    (DiseaseGroup.PSORIASIS, 20),
    (DiseaseGroup.URTICARIA, 10),
    (DiseaseGroup.ROSACEA, 10),
    (DiseaseGroup.ALOPECIA, 10),
    (DiseaseGroup.LUPUS, 10),
]
ICD10 = {
    DiseaseGroup.MELANOMA: ["C43.5", "C43.6", "C43.7", "C43.3", "C43.4", "D03.5"],
    DiseaseGroup.OTHER_SKIN_TUMOUR: ["C44.3", "C44.5", "C44.6", "C44.7"],
    DiseaseGroup.PSORIASIS: ["L40.0", "L40.5", "L40.1"],
    DiseaseGroup.URTICARIA: ["L50.1", "L50.0", "L50.8"],
    DiseaseGroup.ROSACEA: ["L71.1", "L71.8", "L71.9"],
    DiseaseGroup.ALOPECIA: ["L63.0", "L63.9", "L64.9"],
    DiseaseGroup.LUPUS: ["M32.1", "M32.9", "L93.0"],
}
#: ICD-O-3 morphologies of the demo's tumours: melanoma subtypes, basal and squamous cell
#: carcinoma
MELANOMA_MORPHOLOGIES = ("8743/3", "8721/3", "8742/3", "8720/3", "8744/3")
CARCINOMA_MORPHOLOGIES = ("8090/3", "8090/3", "8070/3")


def _morphology(group: DiseaseGroup, icd10: str, index: int) -> str:
    if group is DiseaseGroup.MELANOMA:
        return (
            "8720/2" if icd10.startswith("D03") else MELANOMA_MORPHOLOGIES[index % len(MELANOMA_MORPHOLOGIES)]
        )
    return CARCINOMA_MORPHOLOGIES[index % len(CARCINOMA_MORPHOLOGIES)]


LESION_SITES = {
    DiseaseGroup.MELANOMA: [
        BodySite.POSTERIOR_TORSO,
        BodySite.LOWER_EXTREMITY,
        BodySite.UPPER_EXTREMITY,
        BodySite.HEAD_NECK,
        BodySite.PALMS_SOLES,
        BodySite.ANTERIOR_TORSO,
    ],
    DiseaseGroup.OTHER_SKIN_TUMOUR: [BodySite.FACE, BodySite.HEAD_NECK, BodySite.UPPER_EXTREMITY],
    DiseaseGroup.PSORIASIS: [BodySite.UPPER_EXTREMITY, BodySite.LOWER_EXTREMITY, BodySite.SCALP],
    DiseaseGroup.URTICARIA: [BodySite.ANTERIOR_TORSO, BodySite.UPPER_EXTREMITY],
    DiseaseGroup.ROSACEA: [BodySite.FACE],
    DiseaseGroup.ALOPECIA: [BodySite.SCALP],
    DiseaseGroup.LUPUS: [BodySite.FACE, BodySite.UPPER_EXTREMITY],
}
GIVEN = ["Wei", "Fang", "Lei", "Min", "Jun", "Hui", "Ying", "Tao", "Lin", "Qiang", "Xia", "Yan"]
FAMILY = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun"]
CONSENT_TIERS = [
    ("STORE", ConsentScope.STORAGE, "My samples may be stored in the biobank."),
    ("RES", ConsentScope.RESEARCH_USE, "My samples and data may be used for medical research."),
    ("GEN", ConsentScope.GENETIC_RESEARCH, "My samples may be used for genetic research."),
    ("SHARE", ConsentScope.DATA_SHARING, "Coded data may be shared with other researchers."),
    ("RECON", ConsentScope.RECONTACT, "I may be contacted again about findings or new studies."),
    ("COMM", ConsentScope.COMMERCIAL, "My samples may be used by commercial partners."),
]
#: share of participants who refuse a scope (the others consent to everything)
REFUSAL_RATES = {
    ConsentScope.COMMERCIAL: 0.6,
    ConsentScope.GENETIC_RESEARCH: 0.1,
    ConsentScope.RECONTACT: 0.2,
}
BATCH = 5000
#: tables in foreign-key order: buffered rows are written in this order
TABLE_ORDER = [
    Participant,
    ParticipantPHI,
    ConsentResponse,
    Case,
    Lesion,
    StorageContainer,
    CollectionEvent,
    Specimen,
    CustodyEvent,
]


def database_is_empty() -> bool:
    """True when no participant or specimen exists yet."""
    return db.session.scalar(sa.select(sa.func.count(Participant.id))) == 0


@dataclass
class _Box:
    id: int
    name: str
    rows: int
    cols: int
    path: str
    next_slot: int = 0


@dataclass
class _Loader:
    rng: random.Random
    actor: Actor
    now: dt.datetime
    rows: dict[type, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    next_id: dict[type, int] = field(default_factory=lambda: defaultdict(lambda: 1))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seq_by_prefix: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    boxes: dict[tuple[int, str], _Box] = field(default_factory=dict)
    box_factory: dict[tuple[int, str], Callable[[], _Box]] = field(default_factory=dict)
    pending: int = 0

    def add(self, model: type, **values: Any) -> int:
        """Buffer one row (id assigned here) and its audit record."""
        if "id" not in values and "id" in model.__table__.c:
            values["id"] = self.next_id[model]
            self.next_id[model] += 1
        if hasattr(model, "created_at") and "created_at" not in values:
            values["created_at"] = values["updated_at"] = self.now
        self.rows[model].append(values)
        self.pending += 1
        if self.pending >= BATCH:
            self.flush()
        return values.get("id", values.get("participant_id"))

    def flush(self) -> None:
        audit: list[dict[str, Any]] = []
        for model in TABLE_ORDER:
            batch = self.rows.pop(model, [])
            if not batch:
                continue
            db.session.execute(sa.insert(model), batch)
            self.counts[model.__tablename__] += len(batch)
            if model is CustodyEvent:
                continue
            exclude = {"created_at", "updated_at"}
            key = "id" if model is not ParticipantPHI else "participant_id"
            audit.extend(
                {
                    "occurred_at": self.now,
                    "actor_id": self.actor.id,
                    "actor_name": self.actor.username,
                    "action": AuditAction.INSERT,
                    "entity": model.__tablename__,
                    "entity_id": str(row[key]),
                    "changes": {k: plain_value(v) for k, v in row.items() if k not in exclude},
                    "reason": "demo biobank load",
                }
                for row in batch
            )
        if audit:
            db.session.execute(sa.insert(AuditRecord), audit)
        self.pending = 0

    def barcode(self, site_code: str, material: MaterialType) -> str:
        prefix = site_code + material.value
        self.seq_by_prefix[prefix] += 1
        return make_barcode(site_code, material, self.seq_by_prefix[prefix])


def _ensure_users(sites: list[Site]) -> User:
    actor = system_actor()
    for username, password, role in DEMO_USERS:
        if db.session.scalar(sa.select(User.id).where(User.username == username)) is None:
            create_user(
                username=username,
                role=role,
                full_name=f"Demo {role.value}",
                password=password,
                actor=actor,
                site_codes=[s.code for s in sites],
            )
    return actor


def load_demo(
    *,
    seed: int = 20261123,
    participants: int = 300,
    specimens_per_participant: float = 10.0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Generate the demo biobank into the current database and commit it.

    Refuses (``Conflict``) when the database already holds participants. Returns the number
    of rows written per table.
    """
    if not database_is_empty():
        raise Conflict("the database already holds participants; the demo loads into an empty database only")
    with transaction():
        counts = _generate(
            seed=seed,
            n_participants=participants,
            density=specimens_per_participant / 14.0,
            progress=progress,
        )
        if db.session.get_bind().dialect.name == "postgresql":
            _reset_sequences()

    counts.update(load_demo_images(seed=seed))
    for _receiver, extra in signals.demo_loaded.send(None, seed=seed):
        counts.update(extra or {})
    refresh_statistics()
    return counts


def _reset_sequences() -> None:
    """Rows were inserted with explicit ids: move PostgreSQL's sequences past them."""
    for model in TABLE_ORDER:
        table = model.__table__
        if "id" not in table.c:
            continue
        db.session.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )
        )


def _generate(
    *, seed: int, n_participants: int, density: float, progress: Callable[[int], None] | None
) -> dict[str, int]:
    rng = random.Random(seed)
    sites = []
    for code, name, city, central in SITES:
        site = db.session.scalar(sa.select(Site).where(Site.code == code))
        if site is None:
            site = Site(code=code, name=name, city=city, country="CN", is_central=central)
            db.session.add(site)
        sites.append(site)
    db.session.flush()
    actor = _ensure_users(sites)
    study = db.session.scalar(sa.select(Study).where(Study.code == "SKIN-BB"))
    if study is None:
        study = Study(
            code="SKIN-BB",
            title="National Skin Disease Biobank",
            description="Tissue, blood, urine and stool with clinical data, images "
            "and omics for six skin disease groups.",
            principal_investigator="Prof. Demo",
            ethics_reference="IRB-2021-0457",
        )
        for pos, (code, scope, text) in enumerate(CONSENT_TIERS):
            study.consent_tiers.append(ConsentTier(code=code, scope=scope, statement=text, position=pos))
        db.session.add(study)
    db.session.flush()
    tiers = {t.scope: t.id for t in study.consent_tiers}

    now = utcnow().replace(microsecond=0)
    loader = _Loader(rng=rng, actor=actor, now=now)
    for model in TABLE_ORDER:
        current = db.session.scalar(
            sa.select(sa.func.max(model.__table__.c["id" if "id" in model.__table__.c else "participant_id"]))
        )
        loader.next_id[model] = (current or 0) + 1
    for site in sites:
        _plan_storage(loader, site)

    schedule = [group for group, share in DISEASE_MIX for _ in range(share)]
    for index in range(n_participants):
        group = schedule[(index * 37) % len(schedule)] if n_participants < 1000 else rng.choice(schedule)
        site = sites[0] if rng.random() < 0.7 else sites[1]
        _participant(loader, index, group, site, study.id, tiers, density)
        if progress and index % 1000 == 999:
            progress(index + 1)
    loader.flush()
    return dict(loader.counts)


def _plan_storage(loader: _Loader, site: Site) -> None:
    """Register factories that add freezers, racks and boxes to a site as they fill up."""
    top: dict[str, int] = {}
    racks: dict[str, list[int]] = defaultdict(list)

    def make_top(kind: ContainerKind, name: str, temp: StorageTemperature) -> int:
        return loader.add(
            StorageContainer,
            site_id=site.id,
            parent_id=None,
            kind=kind,
            name=f"{site.code} {name}",
            barcode=None,
            n_rows=None,
            n_cols=None,
            temperature=temp,
        )

    def factory(storage_class: str) -> Callable[[], _Box]:
        kind_parent, temp, holder, rows, cols = {
            "minus80": (ContainerKind.FREEZER, StorageTemperature.MINUS_60_85, ContainerKind.RACK, 9, 9),
            "ln2": (ContainerKind.LN2_TANK, StorageTemperature.LN, ContainerKind.CANISTER, 9, 9),
            "ffpe": (ContainerKind.CABINET, StorageTemperature.RT, ContainerKind.DRAWER, 10, 10),
        }[storage_class]
        counter = {"boxes": 0}

        def new_box() -> _Box:
            if storage_class not in top or len(racks[storage_class]) >= 20 * 5:
                number = sum(1 for k in top if k.startswith(storage_class)) + 1
                label = {"minus80": "−80 °C Freezer", "ln2": "LN2 Tank", "ffpe": "FFPE Cabinet"}
                top_id = make_top(kind_parent, f"{label[storage_class]} {number}", temp)
                top[storage_class] = top_id
                top[f"{storage_class}#{number}"] = top_id
                racks[storage_class] = []
            if storage_class == "ffpe":
                # Drawers hold FFPE blocks directly in a 10 × 10 grid.
                counter["boxes"] += 1
                name = f"Drawer {counter['boxes']}"
                box_id = loader.add(
                    StorageContainer,
                    site_id=site.id,
                    parent_id=top[storage_class],
                    kind=ContainerKind.DRAWER,
                    name=name,
                    barcode=None,
                    n_rows=rows,
                    n_cols=cols,
                    temperature=None,
                )
                racks[storage_class].append(box_id)
                return _Box(box_id, name, rows, cols, f"{site.code} FFPE Cabinet › {name}")
            if not racks[storage_class] or counter["boxes"] % 5 == 0:
                rack_name = (
                    f"{'Rack' if holder is ContainerKind.RACK else 'Canister'} "
                    f"{len(racks[storage_class]) + 1}"
                )
                rack_id = loader.add(
                    StorageContainer,
                    site_id=site.id,
                    parent_id=top[storage_class],
                    kind=holder,
                    name=rack_name,
                    barcode=None,
                    n_rows=None,
                    n_cols=None,
                    temperature=None,
                )
                racks[storage_class].append(rack_id)
            counter["boxes"] += 1
            name = f"Box {counter['boxes']:04d}"
            box_id = loader.add(
                StorageContainer,
                site_id=site.id,
                parent_id=racks[storage_class][-1],
                kind=ContainerKind.BOX,
                name=name,
                barcode=f"{site.code}BX{counter['boxes']:05d}" + storage_class[:1].upper(),
                n_rows=rows,
                n_cols=cols,
                temperature=None,
            )
            return _Box(box_id, name, rows, cols, f"{site.code} {storage_class} › {name}")

        return new_box

    for storage_class in ("minus80", "ln2", "ffpe"):
        loader.box_factory[(site.id, storage_class)] = factory(storage_class)


def _slot(loader: _Loader, site_id: int, storage_class: str) -> tuple[int, int, int, str]:
    key = (site_id, storage_class)
    box = loader.boxes.get(key)
    if box is None or box.next_slot >= box.rows * box.cols:
        box = loader.box_factory[key]()
        loader.boxes[key] = box
    row, col = divmod(box.next_slot, box.cols)
    box.next_slot += 1
    label = f"{chr(65 + row)}{col + 1}"
    return box.id, row + 1, col + 1, f"{box.path} › {label}"


def _participant(
    loader: _Loader,
    index: int,
    group: DiseaseGroup,
    site: Site,
    study_id: int,
    tiers: dict[ConsentScope, int],
    density: float,
) -> None:
    rng = loader.rng
    sex = rng.choice([Sex.FEMALE, Sex.MALE])
    birth_year = rng.randint(1940, 2004)
    code = f"SKN-{index + 1:06d}"
    pid = loader.add(
        Participant, code=code, study_id=study_id, site_id=site.id, sex=sex, birth_year=birth_year
    )
    loader.add(
        ParticipantPHI,
        participant_id=pid,
        given_name=rng.choice(GIVEN),
        family_name=rng.choice(FAMILY),
        medical_record_number=f"MRN{7000000 + index}",
        birth_date=dt.date(birth_year, rng.randint(1, 12), rng.randint(1, 28)),
        contact=None,
    )
    first_visit = loader.now - dt.timedelta(days=rng.randint(30, 5 * 365))
    withdrawn = rng.random() < 0.03
    for scope, tier_id in tiers.items():
        decision = ConsentDecision.YES
        refusal_rate = REFUSAL_RATES.get(scope)
        if refusal_rate is not None and rng.random() < refusal_rate:
            decision = ConsentDecision.NO
        loader.add(
            ConsentResponse,
            participant_id=pid,
            tier_id=tier_id,
            decision=decision,
            signed_on=first_visit.date(),
            withdrawn_at=(
                loader.now - dt.timedelta(days=rng.randint(1, 20))
                if withdrawn and scope is ConsentScope.RESEARCH_USE
                else None
            ),
        )

    case_fields: dict[str, Any] = {}
    if group is DiseaseGroup.MELANOMA:
        breslow = Decimal(str(round(rng.lognormvariate(0.0, 0.8), 2)))
        ulcer = rng.random() < 0.25
        stage = (
            AjccStage.IA
            if breslow <= 0.8 and not ulcer
            else AjccStage.IB
            if breslow <= 1
            else AjccStage.IIA
            if breslow <= 2
            else AjccStage.IIB
            if breslow <= 4
            else AjccStage.IIC
        )
        if rng.random() < 0.15:
            stage = rng.choice([AjccStage.IIIA, AjccStage.IIIB, AjccStage.IIIC, AjccStage.IV])
        case_fields = {"breslow_mm": breslow, "ulceration": ulcer, "ajcc_stage": stage}
    else:
        case_fields = {"breslow_mm": None, "ulceration": None, "ajcc_stage": None}
    case_code = f"C-{index + 1:06d}"
    icd10 = rng.choice(ICD10[group])
    if group.is_tumour:  # ICD-O-3: the skin site the ICD-10 subcode names (C43.5 → C44.5)
        case_fields |= {
            "icdo3_morphology": _morphology(group, icd10, index),
            "icdo3_topography": f"C44.{icd10[-1]}",
        }
    case_id = loader.add(
        Case,
        code=case_code,
        participant_id=pid,
        disease_group=group,
        icd10_code=icd10,
        diagnosis_date=first_visit.date(),
        notes=None,
        **case_fields,
    )
    n_lesions = (
        0
        if group is DiseaseGroup.URTICARIA and rng.random() < 0.5
        else (rng.choice([1, 1, 2]) if group.is_tumour else 1)
    )
    lesions = []
    for j in range(n_lesions):
        lesions.append(
            loader.add(
                Lesion,
                code=f"{case_code}-L{j + 1}",
                case_id=case_id,
                body_site=rng.choice(LESION_SITES[group]),
                laterality=rng.choice([Laterality.LEFT, Laterality.RIGHT, Laterality.MIDLINE]),
                diameter_mm=Decimal(str(round(rng.uniform(2, 25), 1))),
                description=None,
            )
        )

    n_visits = max(1, round(rng.choice([1, 1, 1, 2]) * density))
    for visit in range(n_visits):
        when = first_visit + dt.timedelta(days=visit * rng.randint(60, 200), hours=rng.randint(8, 16))
        if when > loader.now:
            when = loader.now - dt.timedelta(hours=1)
        lesion_id = lesions[visit % len(lesions)] if lesions and visit < 2 else None
        tissue = lesion_id is not None and (group.is_tumour or visit == 0)
        procedure = (
            (CollectionProcedure.EXCISION if group.is_tumour else CollectionProcedure.PUNCH_BIOPSY)
            if tissue
            else CollectionProcedure.VENIPUNCTURE
        )
        event_id = loader.add(
            CollectionEvent,
            participant_id=pid,
            case_id=case_id,
            lesion_id=lesion_id,
            site_id=site.id,
            collected_at=when,
            collector=rng.choice(["Nurse Zhou", "Dr. Lin", "Nurse Xu"]),
            procedure=procedure,
            notes=None,
        )
        ctx = _Visit(loader, pid, site, event_id, lesion_id, when, withdrawn, case_id)
        ctx.blood()
        if tissue:
            ctx.tissue(malignant=group.is_tumour)
        if rng.random() < 0.4:
            ctx.urine()
        if rng.random() < 0.25:
            ctx.stool()


class _Visit:
    """Specimens of one visit and their custody histories."""

    def __init__(
        self,
        loader: _Loader,
        pid: int,
        site: Site,
        event_id: int,
        lesion_id: int | None,
        when: dt.datetime,
        withdrawn: bool,
        case_id: int | None,
    ) -> None:
        self.loader, self.pid, self.site, self.event_id = loader, pid, site, event_id
        self.case_id = case_id
        self.lesion_id, self.when, self.withdrawn = lesion_id, when, withdrawn
        self.rng = loader.rng

    def specimen(
        self,
        material: MaterialType,
        *,
        qty: str,
        unit: QuantityUnit,
        parent: dict[str, Any] | None = None,
        lineage: Lineage = Lineage.PRIMARY,
        storage: str | None = "minus80",
        sprec: str | None = None,
        pathology: PathologyStatus = PathologyStatus.NOT_APPLICABLE,
        minutes: int = 0,
        consumed: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        rng, loader = self.rng, self.loader
        at = self.when + dt.timedelta(minutes=minutes)
        status = SpecimenStatus.IN_STORAGE if storage else SpecimenStatus.RECEIVED
        if consumed:
            status, storage = SpecimenStatus.CONSUMED, None
        elif storage:
            roll = rng.random()
            if roll < 0.03:
                status, storage = SpecimenStatus.CHECKED_OUT, None
            elif roll < 0.05:
                status, storage = SpecimenStatus.DISTRIBUTED, None
            elif roll < 0.055:
                status = SpecimenStatus.QUARANTINED
            elif roll < 0.058:
                status, storage = SpecimenStatus.MISSING, None
        place = _slot(loader, self.site.id, storage) if storage else None
        quantity = Decimal(qty)
        values = dict(
            barcode=loader.barcode(self.site.code, material),
            label=None,
            manufacturer_barcode=None,
            participant_id=self.pid,
            collection_event_id=self.event_id,
            lesion_id=self.lesion_id,
            case_id=self.case_id,
            site_id=self.site.id,
            parent_id=parent["id"] if parent else None,
            lineage=lineage,
            material_type=material,
            pathology_status=pathology,
            anatomical_site=extra.pop("anatomical_site", None),
            status=status,
            initial_quantity=quantity,
            quantity=Decimal(0) if consumed else quantity,
            unit=unit,
            concentration_ng_ul=extra.pop("concentration", None),
            freeze_thaw_count=rng.choice([0, 0, 0, 1, 1, 2]) if storage else 0,
            sprec_code=sprec,
            received_at=self.when + dt.timedelta(minutes=30),
            processed_at=at if parent else None,
            frozen_at=at + dt.timedelta(minutes=20) if storage else None,
            container_id=place[0] if place else None,
            pos_row=place[1] if place else None,
            pos_col=place[2] if place else None,
        )
        values["id"] = loader.next_id[Specimen]
        loader.next_id[Specimen] += 1
        events: list[tuple[CustodyEventType, dt.datetime, dict[str, Any]]] = []
        if parent:
            kind = CustodyEventType.ALIQUOTED if lineage is Lineage.ALIQUOT else CustodyEventType.DERIVED
            events.append((kind, at, {"details": {"parent": parent["barcode"]}}))
        else:
            events.append((CustodyEventType.COLLECTED, self.when, {}))
            events.append(
                (
                    CustodyEventType.RECEIVED,
                    self.when + dt.timedelta(minutes=30),
                    {"details": {"condition": "acceptable"}},
                )
            )
        if place or status in (
            SpecimenStatus.CHECKED_OUT,
            SpecimenStatus.DISTRIBUTED,
            SpecimenStatus.MISSING,
        ):
            location = place[3] if place else f"{self.site.code} storage"
            events.append((CustodyEventType.STORED, at + dt.timedelta(minutes=25), {"to_location": location}))
            later = at + dt.timedelta(days=self.rng.randint(5, 300))
            later = min(later, loader.now - dt.timedelta(minutes=5))
            if status is SpecimenStatus.CHECKED_OUT:
                events.append((CustodyEventType.CHECKED_OUT, later, {"from_location": location}))
            elif status is SpecimenStatus.DISTRIBUTED:
                events.append((CustodyEventType.SHIPPED, later, {"from_location": location}))
            elif status is SpecimenStatus.MISSING:
                events.append((CustodyEventType.MARKED_MISSING, later, {"from_location": location}))
            elif status is SpecimenStatus.QUARANTINED:
                events.append((CustodyEventType.QUARANTINED, later, {}))
        if consumed:
            events.append((CustodyEventType.CONSUMED, at + dt.timedelta(minutes=60), {}))
        chain = self._custody(values, events)
        loader.add(Specimen, **values, custody_head=chain[-1]["hash"], custody_seq=len(chain))
        for row in chain:
            loader.add(CustodyEvent, **row)
        return values

    def _custody(
        self, specimen: dict[str, Any], events: list[tuple[CustodyEventType, dt.datetime, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """The specimen's custody rows, hash-chained in time order."""
        return chain_rows(
            specimen_id=specimen["id"],
            barcode=specimen["barcode"],
            actor_id=self.loader.actor.id,
            actor_name=self.loader.actor.username,
            events=events,
        )

    def blood(self) -> None:
        rng = self.rng
        wb = self.specimen(
            MaterialType.WHOLE_BLOOD,
            qty="10",
            unit=QuantityUnit.ML,
            storage=None,
            consumed=True,
            sprec="BLD-PED-A-N-N-N-N",
            anatomical_site=BodySite.PERIPHERAL_BLOOD,
        )
        plasma = self.specimen(
            MaterialType.PLASMA,
            qty="4",
            unit=QuantityUnit.ML,
            parent=wb,
            lineage=Lineage.DERIVATIVE,
            storage=None,
            consumed=True,
            sprec="PL1-PED-A-D-N-A-B",
            minutes=45,
        )
        for _ in range(rng.choice([2, 2, 3])):
            self.specimen(
                MaterialType.PLASMA,
                qty="0.5",
                unit=QuantityUnit.ML,
                parent=plasma,
                lineage=Lineage.ALIQUOT,
                sprec="PL1-PED-A-D-N-A-B",
                minutes=55,
            )
        buffy = self.specimen(
            MaterialType.BUFFY_COAT,
            qty="0.5",
            unit=QuantityUnit.ML,
            parent=wb,
            lineage=Lineage.DERIVATIVE,
            sprec="BUF-PED-A-D-N-A-B",
            minutes=50,
        )
        if rng.random() < 0.6:
            self.specimen(
                MaterialType.DNA,
                qty="50",
                unit=QuantityUnit.UL,
                parent=buffy,
                lineage=Lineage.DERIVATIVE,
                minutes=60 * 24,
                concentration=Decimal(str(round(rng.uniform(20, 300), 1))),
            )
        if rng.random() < 0.25:
            serum = self.specimen(
                MaterialType.SERUM,
                qty="2",
                unit=QuantityUnit.ML,
                parent=wb,
                lineage=Lineage.DERIVATIVE,
                sprec="SER-SST-A-D-N-A-B",
                minutes=50,
            )
            self.specimen(
                MaterialType.SERUM,
                qty="0.5",
                unit=QuantityUnit.ML,
                parent=serum,
                lineage=Lineage.ALIQUOT,
                sprec="SER-SST-A-D-N-A-B",
                minutes=60,
            )

    def tissue(self, *, malignant: bool) -> None:
        rng = self.rng
        pathology = PathologyStatus.MALIGNANT if malignant else PathologyStatus.NON_MALIGNANT
        frozen = self.specimen(
            MaterialType.TISSUE_FROZEN,
            qty=str(rng.randint(20, 80)),
            unit=QuantityUnit.MG,
            storage="ln2",
            pathology=pathology,
            sprec="TIS-SRG-A-E-SNP-Z-C",
            minutes=20,
        )
        self.specimen(
            MaterialType.TISSUE_PARAFFIN_EMBEDDED,
            qty="1",
            unit=QuantityUnit.COUNT,
            storage="ffpe",
            pathology=pathology,
            sprec="TIS-SRG-A-E-NBF-B-A",
            minutes=25,
        )
        if rng.random() < 0.8:
            self.specimen(
                MaterialType.RNA,
                qty="30",
                unit=QuantityUnit.UL,
                parent=frozen,
                lineage=Lineage.DERIVATIVE,
                pathology=pathology,
                minutes=60 * 48,
                concentration=Decimal(str(round(rng.uniform(50, 500), 1))),
            )
            self.specimen(
                MaterialType.DNA,
                qty="50",
                unit=QuantityUnit.UL,
                parent=frozen,
                lineage=Lineage.DERIVATIVE,
                pathology=pathology,
                minutes=60 * 48,
                concentration=Decimal(str(round(rng.uniform(20, 300), 1))),
            )
        if malignant and rng.random() < 0.5:
            self.specimen(
                MaterialType.TISSUE_FROZEN,
                qty=str(rng.randint(10, 40)),
                unit=QuantityUnit.MG,
                storage="ln2",
                pathology=PathologyStatus.NORMAL,
                sprec="TIS-SRG-A-E-SNP-Z-C",
                minutes=22,
            )

    def urine(self) -> None:
        urine = self.specimen(
            MaterialType.URINE,
            qty="10",
            unit=QuantityUnit.ML,
            storage=None,
            consumed=True,
            sprec="URN-PCC-A-N-N-N-N",
        )
        for _ in range(2):
            self.specimen(
                MaterialType.URINE,
                qty="1.5",
                unit=QuantityUnit.ML,
                parent=urine,
                lineage=Lineage.ALIQUOT,
                sprec="URN-PCC-A-N-N-A-B",
                minutes=40,
            )

    def stool(self) -> None:
        self.specimen(MaterialType.FECES, qty="2", unit=QuantityUnit.G, sprec="STL-STE-B-N-N-N-B", minutes=90)


MASTER_COLUMNS = [
    "participant_code",
    "study_code",
    "site_code",
    "sex",
    "birth_year",
    "case_code",
    "disease_group",
    "icd10_code",
    "breslow_mm",
    "collected_at",
    "procedure",
    "specimen_barcode",
    "material_type",
    "parent_barcode",
    "quantity",
    "unit",
    "sprec_code",
    "status",
    "container_barcode",
    "position",
]


def write_master_csv(
    path: Any,
    *,
    rows: int,
    seed: int = 20261123,
    prefix: str = "GEN",
    site_code: str = "CTR",
    study_code: str = "SKIN-BB",
    boxes: list[str] | None = None,
    box_size: tuple[int, int] = (9, 9),
) -> int:
    """Write a synthetic legacy master-specimen file of *rows* rows (benchmarks, tests).

    Each participant gets a case, a biopsy and a blood draw: frozen tissue, a consumed blood
    draw, its plasma, two plasma aliquots and a serum tube whose barcode is left for the
    importer to issue. Stored tubes fill *boxes* (barcodes) in order; without boxes they are
    recorded as received. Returns the number of rows written.
    """
    rng = random.Random(seed)
    slots = (
        (box, r, c)
        for box in (boxes or [])
        for r in range(1, box_size[0] + 1)
        for c in range(1, box_size[1] + 1)
    )
    groups = [g for g, share in DISEASE_MIX for _ in range(share)]
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(MASTER_COLUMNS)
        n = 0
        while written < rows:
            n += 1
            code = f"{prefix}-{n:07d}"
            group = groups[n % len(groups)]
            biopsy = dt.datetime(2020, 1, 1, 9) + dt.timedelta(
                days=rng.randint(0, 1800), minutes=rng.randint(0, 480)
            )
            draw = biopsy - dt.timedelta(minutes=45)
            first = {
                "participant_code": code,
                "study_code": study_code,
                "site_code": site_code,
                "sex": rng.choice(["female", "male"]),
                "birth_year": rng.randint(1940, 2004),
                "case_code": f"{prefix}C-{n:07d}",
                "disease_group": group.value,
                "icd10_code": ICD10[group][0],
                "breslow_mm": round(rng.lognormvariate(0, 0.8), 2) if group is DiseaseGroup.MELANOMA else "",
            }

            def place() -> dict[str, Any]:
                slot = next(slots, None)
                if slot is None:
                    return {"status": "received"}
                box, r, c = slot
                return {"container_barcode": box, "position": f"{chr(64 + r)}{c}"}

            tube = f"{prefix}{n:07d}"
            specimens = [
                {
                    "collected_at": biopsy,
                    "procedure": "punch_biopsy",
                    "specimen_barcode": f"{tube}T",
                    "material_type": "TISSUE_FROZEN",
                    "quantity": rng.randint(10, 80),
                    "unit": "mg",
                    "sprec_code": "TIS-SRG-A-E-SNP-Z-C",
                    **place(),
                },
                {
                    "collected_at": draw,
                    "procedure": "venipuncture",
                    "specimen_barcode": f"{tube}B",
                    "material_type": "WHOLE_BLOOD",
                    "quantity": 10,
                    "unit": "mL",
                    "status": "consumed",
                },
                {
                    "collected_at": draw,
                    "procedure": "venipuncture",
                    "specimen_barcode": f"{tube}P",
                    "material_type": "PLASMA",
                    "parent_barcode": f"{tube}B",
                    "quantity": 4,
                    "unit": "mL",
                    "status": "consumed",
                },
                {
                    "collected_at": draw,
                    "procedure": "venipuncture",
                    "specimen_barcode": f"{tube}P1",
                    "material_type": "PLASMA",
                    "parent_barcode": f"{tube}P",
                    "quantity": "0.5",
                    "unit": "mL",
                    **place(),
                },
                {
                    "collected_at": draw,
                    "procedure": "venipuncture",
                    "specimen_barcode": f"{tube}P2",
                    "material_type": "PLASMA",
                    "parent_barcode": f"{tube}P",
                    "quantity": "0.5",
                    "unit": "mL",
                    **place(),
                },
                {
                    "collected_at": draw,
                    "procedure": "venipuncture",
                    "specimen_barcode": "",
                    "material_type": "SERUM",
                    "quantity": 1,
                    "unit": "mL",
                    "sprec_code": "SER-SST-A-D-N-A-B",
                    **place(),
                },
            ]
            for i, specimen in enumerate(specimens):
                if written >= rows:
                    break
                row = (
                    first if i == 0 else {"participant_code": code, "case_code": first["case_code"]}
                ) | specimen
                row["collected_at"] = row["collected_at"].strftime("%Y-%m-%d %H:%M")
                writer.writerow([row.get(c, "") for c in MASTER_COLUMNS])
                written += 1
    return written
