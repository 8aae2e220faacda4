"""Structural schemas for the custom resources the manifests use (kubernetes-validate has no
CRDs): the subset of Strimzi's ``kafka.strimzi.io/v1beta2`` and the Prometheus Operator's
``monitoring.coreos.com/v1`` that deploy/k8s uses, strict (no unknown properties), written from
their CRD references. Enough to catch a misspelt or misplaced field.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}


def _obj(properties: Schema, required: tuple[str, ...] = ()) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


METADATA = _obj(
    {"name": NAME, "namespace": NAME, "labels": LABELS, "annotations": LABELS}, ("name",)
)
SCALAR = {"type": ["string", "number", "boolean"]}
RESOURCES = _obj(
    {
        "requests": {"type": "object", "additionalProperties": SCALAR},
        "limits": {"type": "object", "additionalProperties": SCALAR},
    }
)
LABEL_SELECTOR = _obj(
    {
        "matchLabels": LABELS,
        "matchExpressions": {
            "type": "array",
            "items": _obj(
                {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                ("key", "operator"),
            ),
        },
    }
)


def resource(api_version: str, kind: str, spec: Schema) -> Schema:
    return _obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


KAFKA_TOPIC = resource(
    "kafka.strimzi.io/v1beta2",
    "KafkaTopic",
    _obj(
        {
            "topicName": {"type": "string", "minLength": 1},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object", "additionalProperties": SCALAR},
        },
        ("partitions", "replicas"),
    ),
)

KAFKA_NODE_POOL = resource(
    "kafka.strimzi.io/v1beta2",
    "KafkaNodePool",
    _obj(
        {
            "replicas": {"type": "integer", "minimum": 0},
            "roles": {
                "type": "array",
                "items": {"enum": ["controller", "broker"]},
                "minItems": 1,
            },
            "storage": _obj(
                {
                    "type": {"enum": ["ephemeral", "persistent-claim", "jbod"]},
                    "size": {"type": "string"},
                    "sizeLimit": {"type": "string"},
                },
                ("type",),
            ),
            "resources": RESOURCES,
        },
        ("replicas", "roles", "storage"),
    ),
)

LISTENER = _obj(
    {
        "name": {"type": "string", "pattern": r"^[a-z0-9]{1,11}$"},
        "port": {"type": "integer", "minimum": 9092},
        "type": {
            "enum": ["internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"]
        },
        "tls": {"type": "boolean"},
    },
    ("name", "port", "type", "tls"),
)

KAFKA = resource(
    "kafka.strimzi.io/v1beta2",
    "Kafka",
    _obj(
        {
            "kafka": _obj(
                {
                    "version": {"type": "string"},
                    "metadataVersion": {"type": "string"},
                    "listeners": {"type": "array", "items": LISTENER, "minItems": 1},
                    "config": {"type": "object", "additionalProperties": SCALAR},
                    "resources": RESOURCES,
                },
                ("listeners",),
            ),
            "entityOperator": _obj(
                {"topicOperator": {"type": "object"}, "userOperator": {"type": "object"}}
            ),
            "kafkaExporter": {"type": "object"},
        },
        ("kafka",),
    ),
)

POD_MONITOR = resource(
    "monitoring.coreos.com/v1",
    "PodMonitor",
    _obj(
        {
            "jobLabel": {"type": "string"},
            "selector": LABEL_SELECTOR,
            "namespaceSelector": _obj(
                {"any": {"type": "boolean"}, "matchNames": {"type": "array"}}
            ),
            "podMetricsEndpoints": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "port": {"type": "string"},
                        "path": {"type": "string", "pattern": "^/"},
                        "interval": {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"},
                        "scrapeTimeout": {"type": "string"},
                        "relabelings": {"type": "array"},
                    }
                ),
            },
        },
        ("selector", "podMetricsEndpoints"),
    ),
)

RULE = {
    "type": "object",
    "oneOf": [
        _obj(
            {"record": {"type": "string"}, "expr": {"type": "string"}, "labels": LABELS},
            ("record", "expr"),
        ),
        _obj(
            {
                "alert": {"type": "string"},
                "expr": {"type": "string"},
                "for": {"type": "string"},
                "labels": LABELS,
                "annotations": LABELS,
            },
            ("alert", "expr"),
        ),
    ],
}

PROMETHEUS_RULE = resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _obj(
        {
            "groups": {
                "type": "array",
                "items": _obj(
                    {
                        "name": {"type": "string"},
                        "interval": {"type": "string"},
                        "rules": {"type": "array", "items": RULE},
                    },
                    ("name", "rules"),
                ),
            }
        },
        ("groups",),
    ),
)

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): KAFKA_TOPIC,
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): KAFKA_NODE_POOL,
    ("kafka.strimzi.io/v1beta2", "Kafka"): KAFKA,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}
