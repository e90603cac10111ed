"""URLs for django-helpdesk in `bench/peer.py`: its mails link to the ticket page."""

from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
