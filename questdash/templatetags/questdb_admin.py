"""{% questdb_date_hierarchy cl %}: the admin's date drill-down, asked QuestDB's way."""

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode

from questdash.questdb_admin import fast_date_hierarchy

register = template.Library()


@register.tag(name="questdb_date_hierarchy")
def questdb_date_hierarchy_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=fast_date_hierarchy, template_name="date_hierarchy.html",
        takes_context=False,
    )  # fmt: skip
