"""The catalogue's API (first version: being built)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Category
from .selectors import category_list


class CategoryListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Category
            fields = ["code", "name_en", "name_zh"]

    @extend_schema(responses=OutputSerializer(many=True), summary="The category taxonomy")
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(category_list(), many=True).data)
