using System.Runtime.InteropServices;

namespace Limen.Libvirt.Tests;

/// <summary>The typed parameters MigrationParameters hands to virDomainMigrate3, built by libvirt's own virTypedParamsAdd*.</summary>
public sealed unsafe class MigrationParametersTests
{
    [Fact]
    public void Set_members_become_typed_parameters_in_order_and_unset_ones_are_left_out()
    {
        var parameters = new MigrationParameters
        {
            DestinationXml = "<domain/>",
            MigrateUri = "tcp://127.0.0.3",
            MigrateDisks = ["vda", "vdb"],
            BandwidthMiBs = 5,
        };

        using var typed = parameters.ToTypedParameters();

        Assert.Equal(
            [("destination_xml", "<domain/>"), ("migrate_uri", "tcp://127.0.0.3"), ("migrate_disks", "vda"), ("migrate_disks", "vdb"), ("bandwidth", "5")],
            Enumerable.Range(0, typed.Count).Select(i => Describe(&typed.Items[i])));
    }

    [Fact]
    public void No_members_set_is_no_parameters()
    {
        using var typed = new MigrationParameters().ToTypedParameters();
        Assert.Equal(0, typed.Count);
    }

    [Fact]
    public void A_null_disk_name_is_refused_before_anything_reaches_libvirt()
    {
        var parameters = new MigrationParameters { MigrateDisks = ["vda", null!] };
        Assert.Throws<ArgumentException>(() => parameters.ToTypedParameters().Dispose());
    }

    private static (string Name, string Value) Describe(VirTypedParameter* parameter) => (
        Native.FixedString(parameter->Field, 80),
        parameter->Type switch
        {
            4 => parameter->UL.ToString(System.Globalization.CultureInfo.InvariantCulture), // VIR_TYPED_PARAM_ULLONG
            7 => Marshal.PtrToStringUTF8(parameter->S)!,                                     // VIR_TYPED_PARAM_STRING
            var other => $"type {other}",
        });
}
