"""The trading API, mounted under /api/v1/: orders, access requests, balances, entitlements, statement lines, withdrawals, the fee schedules."""

from django.urls import path

from exchange.api import path_of_operations

from . import apis

urlpatterns = [
    path("orders", path_of_operations(apis.OrderListApi, apis.OrderCreateApi), name="orders"),
    path("orders/quote", apis.OrderQuoteApi.as_view(), name="order-quote"),
    path("orders/<int:pk>", apis.OrderDetailApi.as_view(), name="order"),
    path("orders/<int:pk>/cancel", apis.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<int:pk>/confirm-delivery", apis.OrderConfirmDeliveryApi.as_view(), name="order-confirm-delivery"),
    path("orders/<int:pk>/accept", apis.OrderAcceptApi.as_view(), name="order-accept"),
    path("orders/<int:pk>/dispute", apis.OrderDisputeApi.as_view(), name="order-dispute"),
    path(
        "access-requests",
        path_of_operations(apis.AccessRequestListApi, apis.AccessRequestCreateApi),
        name="access-requests",
    ),
    path("access-requests/<int:pk>", apis.AccessRequestDetailApi.as_view(), name="access-request"),
    path("access-requests/<int:pk>/approve", apis.AccessRequestApproveApi.as_view(), name="access-request-approve"),
    path("access-requests/<int:pk>/decline", apis.AccessRequestDeclineApi.as_view(), name="access-request-decline"),
    path("access-requests/<int:pk>/withdraw", apis.AccessRequestWithdrawApi.as_view(), name="access-request-withdraw"),
    path("balances", apis.BalanceListApi.as_view(), name="balances"),
    path("entitlements", apis.EntitlementListApi.as_view(), name="entitlements"),
    path("entitlements/<int:pk>", apis.EntitlementDetailApi.as_view(), name="entitlement"),
    path(
        "entitlements/<int:pk>/stop-renewal", apis.EntitlementStopRenewalApi.as_view(), name="entitlement-stop-renewal"
    ),
    path(
        "entitlements/<int:pk>/download-link",
        apis.EntitlementDownloadLinkApi.as_view(),
        name="entitlement-download-link",
    ),
    path(
        "entitlements/<int:pk>/queries",
        path_of_operations(apis.EntitlementQueryListApi, apis.EntitlementQueryCreateApi),
        name="entitlement-queries",
    ),
    path(
        "entitlements/<int:pk>/credential",
        apis.EntitlementCredentialCreateApi.as_view(),
        name="entitlement-credential",
    ),
    path(
        "entitlements/<int:pk>/credential/revoke",
        apis.EntitlementCredentialRevokeApi.as_view(),
        name="entitlement-credential-revoke",
    ),
    path("entitlements/<int:pk>/usage", apis.EntitlementUsageApi.as_view(), name="entitlement-usage"),
    path("fee-schedules", apis.FeeScheduleListApi.as_view(), name="fee-schedules"),
    path("statement-lines", apis.StatementLineListApi.as_view(), name="statement-lines"),
    path("withdrawals", path_of_operations(apis.WithdrawalListApi, apis.WithdrawalCreateApi), name="withdrawals"),
    path("withdrawals/<int:pk>", apis.WithdrawalDetailApi.as_view(), name="withdrawal"),
    path("withdrawals/<int:pk>/cancel", apis.WithdrawalCancelApi.as_view(), name="withdrawal-cancel"),
]
