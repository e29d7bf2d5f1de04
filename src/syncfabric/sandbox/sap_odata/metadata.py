"""``$metadata``: the EDMX document of a service, generated from the entity definitions with SAP's annotations
for keys, labels omitted, and navigation through associations."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from syncfabric.sandbox.sap_odata.entities import DTO, EntitySet

_FACETS = {"Edm.String": ' MaxLength="40"', "Edm.Decimal": ' Precision="13" Scale="3"',
           "Edm.DateTime": ' Precision="0" sap:display-format="Date"', DTO: ' Precision="7"'}


def edmx(service: str, sets: dict[str, EntitySet]) -> str:
    types, associations, containers = [], [], []
    for spec in sets.values():
        keys = "".join(f'<PropertyRef Name="{name}"/>' for name in spec.keys)
        props = "".join(
            f'<Property Name="{name}" Type="{edm}"{_nullable(spec, name)}{_FACETS.get(edm, "")}/>'
            for name, edm in spec.properties.items())
        navs = []
        for nav, navigation in spec.navigation.items():
            association = f"assoc_{spec.name}_{nav}"
            navs.append(f'<NavigationProperty Name="{nav}" Relationship="{service}.{association}" '
                        f'FromRole="FromRole_{association}" ToRole="ToRole_{association}"/>')
            many = "*" if navigation.many else "0..1"
            associations.append(
                f'<Association Name="{association}"><End Type="{service}.{spec.type_name}" Multiplicity="1" '
                f'Role="FromRole_{association}"/><End Type="{service}.{navigation.target}Type" '
                f'Multiplicity="{many}" Role="ToRole_{association}"/></Association>')
            if navigation.target in sets:
                containers.append(
                    f'<AssociationSet Name="{association}_set" Association="{service}.{association}">'
                    f'<End EntitySet="{spec.name}" Role="FromRole_{association}"/>'
                    f'<End EntitySet="{navigation.target}" Role="ToRole_{association}"/></AssociationSet>')
        types.append(f'<EntityType Name="{spec.type_name}"><Key>{keys}</Key>{props}{"".join(navs)}</EntityType>')
        flags = f' sap:creatable="{str(spec.creatable).lower()}" sap:updatable="{str(spec.updatable).lower()}"'
        containers.insert(0, f'<EntitySet Name="{spec.name}" EntityType="{service}.{spec.type_name}"{flags}/>')
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
        'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
        'xmlns:sap="http://www.sap.com/Protocols/SAPData">'
        '<edmx:DataServices m:DataServiceVersion="2.0">'
        f'<Schema Namespace={quoteattr(service)} xml:lang="en" sap:schema-version="1" '
        'xmlns="http://schemas.microsoft.com/ado/2008/09/edm">'
        + "".join(types) + "".join(associations)
        + f'<EntityContainer Name="{service}_Entities" m:IsDefaultEntityContainer="true">'
        + "".join(containers) + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )


def _nullable(spec: EntitySet, name: str) -> str:
    return ' Nullable="false"' if name in spec.keys else ""
