namespace Limen.Features.Backup;

/// <summary>
/// The CRC-32 (gzip's, reflected polynomial 0xEDB88320) of two stretches of data joined, from
/// each one's CRC and the second one's length, without the data: what System.IO.Hashing lacks and
/// <see cref="ParallelGzipStream"/> needs for bytes it writes out of order. The arithmetic is in
/// GF(2) polynomials modulo the CRC polynomial: crc(A‖B) = crc(A)·x^(8·|B|) + crc(B).
/// </summary>
public static class Crc32Combine
{
    private const uint Polynomial = 0xEDB88320;

    /// <summary>x^(2^k) mod P for k = 0..31 (x^1 is bit 30 in the reflected order; each entry squares the one before).</summary>
    private static readonly uint[] PowersOfX = BuildPowers();

    public static uint Combine(uint first, uint second, long secondLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(secondLength);
        return Multiply(XToThe8N(secondLength), first) ^ second;
    }

    /// <summary>a·b mod P, bits reflected (bit 31 is x^0).</summary>
    private static uint Multiply(uint a, uint b)
    {
        var product = 0u;
        for (var bit = 1u << 31; bit != 0 && a != 0; bit >>= 1)
        {
            if ((a & bit) != 0)
            {
                product ^= b;
                a ^= bit;
            }

            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }

        return product;
    }

    /// <summary>x^(8·n) mod P by squaring: n's bits pick the powers x^(8·2^i) = x^(2^(i+3)).</summary>
    private static uint XToThe8N(long n)
    {
        var result = 1u << 31; // x^0
        for (var k = 3; n != 0; n >>= 1, k++)
        {
            if ((n & 1) != 0)
            {
                result = Multiply(PowersOfX[k & 31], result);
            }
        }

        return result;
    }

    private static uint[] BuildPowers()
    {
        var powers = new uint[32];
        powers[0] = 1u << 30; // x^1
        for (var k = 1; k < powers.Length; k++)
        {
            powers[k] = Multiply(powers[k - 1], powers[k - 1]);
        }

        return powers;
    }
}
