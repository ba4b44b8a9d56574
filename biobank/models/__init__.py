"""All domain models; importing this module registers every table on the metadata."""

from biobank.models.audit import AuditRecord
from biobank.models.cases import Case, Lesion
from biobank.models.cohorts import (
    Cohort,
    CohortExport,
    CohortExportSplit,
    CohortSnapshot,
    CohortSnapshotMember,
    CohortSnapshotObject,
)
from biobank.models.collection_events import CollectionEvent
from biobank.models.custody import CustodyEvent
from biobank.models.images import Image, ImageModality
from biobank.models.imports import ImportJob, ImportProblem, ImportStatus
from biobank.models.participants import ConsentResponse, Participant, ParticipantPHI
from biobank.models.requests import (
    Allocation,
    RequestSignature,
    RequestStatus,
    SampleRequest,
    Shipment,
)
from biobank.models.scans import (
    BarcodeSequence,
    CustodyCheckpoint,
    RackScan,
    RackScanStatus,
    Scan,
    ScanAction,
)
from biobank.models.sites import Site
from biobank.models.specimens import Specimen
from biobank.models.storage import (
    FillOrder,
    PositionHold,
    PositionHoldKind,
    PositionScheme,
    StorageContainer,
)
from biobank.models.studies import ConsentTier, Study
from biobank.models.users import ApiToken, Throttle, User, UserSession, user_sites
from biobank.models.witnesses import WitnessedCheckpoint, WitnessReceipt

__all__ = [
    "Allocation",
    "ApiToken",
    "AuditRecord",
    "BarcodeSequence",
    "Case",
    "Cohort",
    "CohortExport",
    "CohortExportSplit",
    "CohortSnapshot",
    "CohortSnapshotMember",
    "CohortSnapshotObject",
    "CollectionEvent",
    "ConsentResponse",
    "ConsentTier",
    "CustodyCheckpoint",
    "CustodyEvent",
    "FillOrder",
    "Image",
    "ImageModality",
    "ImportJob",
    "ImportProblem",
    "ImportStatus",
    "Lesion",
    "Participant",
    "ParticipantPHI",
    "PositionHold",
    "PositionHoldKind",
    "PositionScheme",
    "RackScan",
    "RackScanStatus",
    "RequestSignature",
    "RequestStatus",
    "SampleRequest",
    "Scan",
    "ScanAction",
    "Shipment",
    "Site",
    "Specimen",
    "StorageContainer",
    "Study",
    "Throttle",
    "User",
    "UserSession",
    "WitnessReceipt",
    "WitnessedCheckpoint",
    "user_sites",
]
