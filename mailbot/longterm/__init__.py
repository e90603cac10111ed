"""Seed 004: the supply-start and roadmap assessments, their notices (mail and PDF), the
roadmap campaign and the market and business-day calendars."""
