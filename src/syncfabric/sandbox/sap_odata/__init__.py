"""An SAP S/4HANA system as its OData v2 APIs show it: see :mod:`.app`."""

from syncfabric.sandbox.sap_odata.app import ROOT, create_app
from syncfabric.sandbox.sap_odata.state import SapState

__all__ = ["ROOT", "SapState", "create_app"]
