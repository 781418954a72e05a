"""Roles: the members who were there before roles existed own their teams (each had every right)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("teams", "0001_initial"),
    ]

    operations = [
        # existing rows take "owner"; new ones the model's default, "member"
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(default="owner", max_length=10),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="membership",
            name="role",
            field=models.CharField(choices=[("owner", "Owner"), ("member", "Member"), ("viewer", "Viewer")],
                                   default="member", max_length=10),
        ),
    ]
