"""docs/site-schema.json is the schema hpcx validates with, so editors and hpcx never disagree."""

import json
from pathlib import Path

from hpcx.site.schema import SITE_SCHEMA, validate

REPO = Path(__file__).resolve().parents[3]


def test_published_schema_is_the_one_in_use():
    published = json.loads((REPO / "docs" / "site-schema.json").read_text())
    assert published == json.loads(json.dumps(SITE_SCHEMA)), (
        "docs/site-schema.json is stale: regenerate it with\n"
        'python -c "import json; from hpcx.site.schema import SITE_SCHEMA; '
        'print(json.dumps(SITE_SCHEMA, indent=2))" > docs/site-schema.json'
    )


def test_hostile_site_values_are_reported_not_executed():
    doc = {
        "version": 1,
        "clusters": {
            "c": {
                "scheduler": "slurm",
                "partitions": {"p": {"max_time": "$(reboot)", "max_nodes": 1, "cpus_per_node": 1}},
            }
        },
        "name": "a b\n#SBATCH",
    }
    problems = validate(doc)
    assert sorted(problems) == sorted(
        [
            "name: 'a b\\n#SBATCH' is not a plain name (letters, digits, . _ + : @ -)",
            "clusters.c.partitions.p.max_time: '$(reboot)' is not a Slurm time (MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED)",
        ]
    )
