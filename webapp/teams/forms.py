"""The team page's forms: invite by username, make an invite link, change a role."""

from django import forms

from webapp.teams.models import Membership


class MemberInviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class InviteLinkForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)
    expires_in_days = forms.IntegerField(min_value=1, max_value=30, initial=7)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)
