from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from experiments_app.views import PasswordChange, healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", PasswordChange.as_view(), name="password_change"),
    path("admin/", admin.site.urls),
    path("", include("experiments_app.urls")),
]
