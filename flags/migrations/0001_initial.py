from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    # accounts.0001_initial (formerly chimera.0001_initial) created this table as chimera_runtimeflags.
    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='RuntimeFlags',
                    fields=[
                        ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                        ('value', models.JSONField(default=dict, help_text="Merged over the defaults; see README 'Rollback'.")),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'verbose_name': 'runtime flags',
                        'verbose_name_plural': 'runtime flags',
                        'db_table': 'chimera_runtimeflags',
                    },
                ),
            ],
        ),
        migrations.AlterModelTable(name='runtimeflags', table='runtime_flags'),
    ]
