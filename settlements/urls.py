"""Portal pages of trading, mounted under /portal/ in the `portal:settlements` namespace: the buy flow beside the
product page it starts from, then the orders, sales, entitlements, access requests, balances, deposits and withdrawals."""

from django.urls import path

from . import sandbox_views, views

app_name = "settlements"

urlpatterns = [
    path("products/<int:pk>/buy/<int:plan_pk>", views.buy, name="buy"),
    path("products/<int:pk>/buy/<int:plan_pk>/confirm", views.buy_confirm, name="buy-confirm"),
    path("products/<int:pk>/access-request", views.access_request_new, name="access-request-new"),
    path("orders/", views.orders, name="orders"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("orders/<int:pk>/cancel", views.order_action, {"action": "cancel"}, name="order-cancel"),
    path("orders/<int:pk>/accept", views.order_action, {"action": "accept"}, name="order-accept"),
    path("orders/<int:pk>/dispute", views.order_action, {"action": "dispute"}, name="order-dispute"),
    path("orders/<int:pk>/deliver", views.order_action, {"action": "deliver"}, name="order-deliver"),
    path("sales/", views.sales, name="sales"),
    path("entitlements/", views.entitlements, name="entitlements"),
    path("entitlements/<int:pk>/download", views.entitlement_download, name="entitlement-download"),
    path("entitlements/<int:pk>/stop", views.entitlement_stop, name="entitlement-stop"),
    path("entitlements/<int:pk>/sandbox", sandbox_views.entitlement_sandbox, name="entitlement-sandbox"),
    path("entitlements/<int:pk>/credential", views.entitlement_credential, name="entitlement-credential"),
    path(
        "entitlements/<int:pk>/credential/new",
        views.entitlement_credential_created,
        name="entitlement-credential-created",
    ),
    path(
        "entitlements/<int:pk>/credential/revoke",
        views.entitlement_credential_revoke,
        name="entitlement-credential-revoke",
    ),
    path("access-requests/", views.access_requests, name="access-requests"),
    path("access-requests/incoming/", views.access_requests_incoming, name="access-requests-incoming"),
    path("access-requests/<int:pk>/", views.access_request_detail, name="access-request"),
    path(
        "access-requests/<int:pk>/approve",
        views.access_request_decide,
        {"decision": "approve"},
        name="access-request-approve",
    ),
    path(
        "access-requests/<int:pk>/decline",
        views.access_request_decide,
        {"decision": "decline"},
        name="access-request-decline",
    ),
    path("access-requests/<int:pk>/withdraw", views.access_request_withdraw, name="access-request-withdraw"),
    path("balances/", views.balances, name="balances"),
    path("deposits/", views.deposit_instructions, name="deposits"),
    path("withdrawals/", views.withdrawal_list, name="withdrawals"),
    path("withdrawals/<int:pk>/cancel", views.withdrawal_cancel, name="withdrawal-cancel"),
]
