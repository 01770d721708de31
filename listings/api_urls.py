"""The catalogue's API, mounted under /api/v1/.

Each operation is its own class (`<Entity><Action>Api`); where two share a path (list and create, read
and edit), the path serves a class composed of both, so that each keeps its own serializers and schema.
"""

from typing import Any

from django.urls import path

from . import apis


def _path_of(*operations: type) -> Any:
    # The classes define different HTTP methods (asserted), so composing them only routes by method.
    methods = [{m for m in ("get", "post", "put", "patch", "delete") if m in vars(op)} for op in operations]
    assert all(not (a & b) for i, a in enumerate(methods) for b in methods[i + 1 :]), methods
    return type("".join(op.__name__ for op in operations), operations, {}).as_view()  # type: ignore[attr-defined]  # APIViews


urlpatterns = [
    path("categories", apis.CategoryListApi.as_view(), name="categories"),
    path("products", _path_of(apis.ProductListApi, apis.ProductCreateApi), name="products"),
    path("products/facets", apis.ProductFacetsApi.as_view(), name="product-facets"),
    path("products/<int:pk>", _path_of(apis.ProductDetailApi, apis.ProductUpdateApi), name="product"),
    path(
        "products/<int:pk>/sample", _path_of(apis.ProductSampleApi, apis.ProductSampleUploadApi), name="product-sample"
    ),
    path(
        "products/<int:pk>/dataset",
        _path_of(apis.ProductDatasetApi, apis.ProductDatasetUploadApi),
        name="product-dataset",
    ),
    path("products/<int:pk>/submit", apis.ProductSubmitApi.as_view(), name="product-submit"),
    path("products/<int:pk>/withdraw", apis.ProductWithdrawApi.as_view(), name="product-withdraw"),
    path("products/<int:pk>/draft", apis.ProductDraftCreateApi.as_view(), name="product-draft"),
    path("products/<int:pk>/plans", _path_of(apis.ProductPlanListApi, apis.PlanCreateApi), name="product-plans"),
    path("products/<int:pk>/plans/<int:plan_id>/retire", apis.PlanRetireApi.as_view(), name="plan-retire"),
    path("my/products", apis.MyProductListApi.as_view(), name="my-products"),
]
