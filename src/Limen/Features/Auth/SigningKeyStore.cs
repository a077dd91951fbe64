using System.Security.Cryptography;
using Limen.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Limen.Features.Auth;

/// <summary>
/// The ES256 key that signs access tokens: generated at first start into the state directory
/// (0600) and reused afterwards, so tokens survive a restart and nothing shares a secret.
/// </summary>
public sealed class SigningKeyStore
{
    public const string FileName = "jwt-signing-key.pem";

    public SigningKeyStore(IOptions<LimenOptions> options)
    {
        var path = Path.Combine(StateDirectory.Ensure(options.Value.StateDir), FileName);
        var ecdsa = ECDsa.Create();
        if (File.Exists(path))
        {
            ecdsa.ImportFromPem(File.ReadAllText(path));
        }
        else
        {
            ecdsa.GenerateKey(ECCurve.NamedCurves.nistP256);
            StateDirectory.WriteSecretFile(path, ecdsa.ExportPkcs8PrivateKeyPem());
        }

        var keyId = Convert.ToHexStringLower(SHA256.HashData(ecdsa.ExportSubjectPublicKeyInfo()))[..16];
        Key = new ECDsaSecurityKey(ecdsa) { KeyId = keyId };
    }

    public ECDsaSecurityKey Key { get; }
}
