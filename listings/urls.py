"""Portal pages of the catalogue, mounted under /portal/ in the `portal` namespace."""

from django.urls import path

from . import views

urlpatterns = [
    path("catalogue/", views.catalogue, name="catalogue"),
    path("notices/", views.notices, name="notices"),
    path("products/<int:pk>/", views.product_detail, name="product"),
    path("products/<int:pk>/sample", views.product_sample, name="product-sample"),
    path("products/<int:pk>/objection", views.product_object, name="product-objection"),
    path("my-products/", views.my_products, name="my-products"),
    path("my-products/new", views.product_create, name="my-product-new"),
    path("my-products/<int:pk>/edit", views.product_edit, name="my-product-edit"),
    path("my-products/<int:pk>/sample", views.product_sample_upload, name="my-product-sample"),
    path("my-products/<int:pk>/dataset", views.product_dataset_upload, name="my-product-dataset"),
    path("my-products/<int:pk>/plans", views.plan_create, name="my-product-plan-create"),
    path("my-products/<int:pk>/plans/<int:plan_pk>/retire", views.plan_retire, name="my-product-plan-retire"),
    path("my-products/<int:pk>/submit", views.product_submit, name="my-product-submit"),
    path("my-products/<int:pk>/withdraw", views.product_withdraw, name="my-product-withdraw"),
    path("my-products/<int:pk>/new-revision", views.revision_new, name="my-product-new-revision"),
    path("my-products/<int:pk>/delist", views.product_delist, name="my-product-delist"),
    path("my-products/<int:pk>/revisions", views.product_revisions, name="my-product-revisions"),
]
