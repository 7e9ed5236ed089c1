"""Imports every table module so each metadata knows all of its tables (for migrations)."""

from core.audit import models as audit_models  # noqa: F401
from core.campaigns import models as campaign_models  # noqa: F401
from core.consent import models as consent_models  # noqa: F401
from core.db.base import ControlModel, TenantModel
from core.delivery import models as delivery_models  # noqa: F401
from core.imports import models as import_models  # noqa: F401
from core.ingest import models as ingest_models  # noqa: F401
from core.internal_events import models as internal_event_models  # noqa: F401
from core.journeys import models as journey_models  # noqa: F401
from core.loyalty import models as loyalty_models  # noqa: F401
from core.operations import models as operation_models  # noqa: F401
from core.passes import models as pass_models  # noqa: F401
from core.plugin_data import models as plugin_data_models  # noqa: F401
from core.profiles import models as profile_models  # noqa: F401
from core.queue import models as queue_models  # noqa: F401
from core.sandbox import models as sandbox_models  # noqa: F401
from core.segments import models as segment_models  # noqa: F401
from core.streams import cursor as stream_cursor  # noqa: F401
from core.tenancy import models as tenancy_models  # noqa: F401
from core.traits import models as trait_models  # noqa: F401

CONTROL_METADATA = ControlModel.metadata
TENANT_METADATA = TenantModel.metadata
