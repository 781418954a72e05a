"""REST API for teams: my teams with my role, a team's members, and the owners' changes
(invite by username or by a one-time link, change a role, remove a member).

Every member sees the team (`teams.view`); changes need `teams.manage` (owners), else 403
`{detail}` naming the permission and the role. A team the user is not in, or a user not in the
team, is a 404. Refusals by the guard rails (the last owner, a user already in the team, an
unknown username) are 400 `{field: [reasons]}`.
"""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api.errors import ErrorSerializer, ValidationErrorSerializer
from webapp.api.pagination import LimitOffsetPagination, get_paginated_response
from webapp.teams import services
from webapp.teams.models import Membership, Team
from webapp.teams.permissions import perms_for, require_perm
from webapp.teams.selectors import membership_get, membership_list, team_get_for_user, team_list_for_user

_WRITE_ERRORS = {400: ValidationErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


# -- output shapes ------------------------------------------------------------------------------


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.pk")
    username = serializers.CharField(source="user.get_username")
    role = serializers.ChoiceField(choices=Membership.Role.choices)

    class Meta:
        model = Membership
        ref_name = "TeamMember"
        fields = ("user_id", "username", "role", "joined_at")


class TeamSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(source="my_role", choices=Membership.Role.choices, help_text="My role in the team.")
    member_count = serializers.IntegerField()

    class Meta:
        model = Team
        ref_name = "Team"
        fields = ("id", "name", "role", "member_count", "created_at")


class TeamDetailSerializer(TeamSerializer):
    """The answer's shape (the view fills it from TeamSerializer, the members and perms_for)."""

    members = MemberSerializer(many=True)
    permissions = serializers.DictField(child=serializers.BooleanField(),
                                        help_text="What my role allows in this team (teams_manage, …).")

    class Meta(TeamSerializer.Meta):
        ref_name = "TeamDetail"
        fields = (*TeamSerializer.Meta.fields, "members", "permissions")


class InviteSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="The one-time link: shown only in this answer.")
    token = serializers.CharField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    expires_at = serializers.DateTimeField()

    class Meta:
        ref_name = "TeamInvite"


def _team(request, team_id: int) -> Team:
    team = team_get_for_user(user=request.user, team_id=team_id)
    require_perm(request.user, "teams.view", team)
    return team


def _membership(request, team_id: int, user_id: int) -> Membership:
    team = _team(request, team_id)
    return membership_get(team=team, user_id=user_id)


# -- operations ----------------------------------------------------------------------------------


class TeamListApi(APIView):
    pagination_class = LimitOffsetPagination

    @extend_schema(operation_id="teams_list", responses={200: TeamSerializer(many=True)})
    def get(self, request):
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=TeamSerializer,
                                      queryset=team_list_for_user(user=request.user), request=request, view=self)


class TeamDetailApi(APIView):
    @extend_schema(operation_id="teams_retrieve", responses={200: TeamDetailSerializer, 404: ErrorSerializer})
    def get(self, request, team_id: int):
        team = _team(request, team_id)
        return Response({**TeamSerializer(team).data,
                         "members": MemberSerializer(membership_list(team=team), many=True).data,
                         "permissions": perms_for(request.user, team)})


class TeamMemberListApi(APIView):
    pagination_class = LimitOffsetPagination

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)

        class Meta:
            ref_name = "TeamMemberCreate"

    @extend_schema(operation_id="teams_members_list", responses={200: MemberSerializer(many=True), 404: ErrorSerializer})
    def get(self, request, team_id: int):
        return get_paginated_response(pagination_class=self.pagination_class, serializer_class=MemberSerializer,
                                      queryset=membership_list(team=_team(request, team_id)), request=request,
                                      view=self)

    @extend_schema(operation_id="teams_members_create", request=InputSerializer,
                   responses={201: MemberSerializer, **_WRITE_ERRORS})
    def post(self, request, team_id: int):
        team = _team(request, team_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.member_invite(actor=request.user, team=team, **serializer.validated_data)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class TeamMemberDetailApi(APIView):
    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Membership.Role.choices)

        class Meta:
            ref_name = "TeamMemberUpdate"

    @extend_schema(operation_id="teams_members_retrieve", responses={200: MemberSerializer, 404: ErrorSerializer})
    def get(self, request, team_id: int, user_id: int):
        return Response(MemberSerializer(_membership(request, team_id, user_id)).data)

    @extend_schema(operation_id="teams_members_partial_update", request=InputSerializer,
                   responses={200: MemberSerializer, **_WRITE_ERRORS})
    def patch(self, request, team_id: int, user_id: int):
        membership = _membership(request, team_id, user_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.member_role_set(actor=request.user, membership=membership,
                                              role=serializer.validated_data["role"])
        return Response(MemberSerializer(membership).data)

    @extend_schema(operation_id="teams_members_destroy", responses={204: None, **_WRITE_ERRORS})
    def delete(self, request, team_id: int, user_id: int):
        membership = _membership(request, team_id, user_id)
        services.member_remove(actor=request.user, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamInviteListApi(APIView):
    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)
        expires_in_days = serializers.IntegerField(min_value=1, max_value=30, default=7)

        class Meta:
            ref_name = "TeamInviteCreate"

    @extend_schema(operation_id="teams_invites_create", request=InputSerializer,
                   responses={201: InviteSerializer, **_WRITE_ERRORS})
    def post(self, request, team_id: int):
        team = _team(request, team_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invite, token = services.invite_create(actor=request.user, team=team, role=serializer.validated_data["role"],
                                               ttl=timedelta(days=serializer.validated_data["expires_in_days"]))
        url = request.build_absolute_uri(reverse("teams:join", args=[token]))
        data = {"url": url, "token": token, "role": invite.role, "expires_at": invite.expires_at}
        return Response(InviteSerializer(data).data, status=status.HTTP_201_CREATED)
