
namespace Limen.Web;

public static class Policies
{
    public const string Admin = "admin";
}
